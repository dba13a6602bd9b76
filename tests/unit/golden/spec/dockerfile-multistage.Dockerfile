ARG PYTHON=3.11
FROM --platform=linux/amd64 python:${PYTHON}-slim AS build
RUN pip wheel --wheel-dir /wheels numpy
FROM build AS final
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl \
    # comments inside a continuation are dropped by Docker
    && rm -rf /wheels
CMD ["python"]
