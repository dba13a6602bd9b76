FROM debian:bookworm
# hello
RUN echo hi
