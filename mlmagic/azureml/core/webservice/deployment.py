"""A deployment going on in the background, as Azure's ``Model.deploy`` returns one.

``Model.deploy`` checks the request at once, then builds and starts the service in a
thread; ``wait_for_deployment`` replays every event so far and follows the rest, printing
them when asked, and raises the deployment's error, as Azure's does.
"""

from __future__ import annotations

import threading
from collections.abc import Generator
from typing import TYPE_CHECKING

from mlmagic.events import BuildEvent, BuildEventKind
from mlmagic.exceptions import MlmagicError

if TYPE_CHECKING:
    from mlmagic.azureml.core.webservice.webservice import Webservice
    from mlmagic.azureml.core.workspace import Workspace
    from mlmagic.deploy.service import Service

__all__ = ["Deployment"]


class Deployment:
    """The events of one deployment, fed by a thread, read by any number of waits."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.events: list[BuildEvent] = []
        self.error: MlmagicError | None = None
        self.done = False
        self._changed = threading.Condition()

    @classmethod
    def start(
        cls,
        workspace: Workspace,
        name: str,
        events: Generator[BuildEvent, None, Service],
        *,
        show_output: bool = False,
    ) -> Webservice:
        """Run ``events`` up to its first event here (so a wrong request raises now), the
        rest in a thread; return the service, deploying."""
        from mlmagic.azureml.core.webservice.webservice import Webservice, WebserviceException

        deployment = cls(name)
        try:
            deployment.events.append(next(events))
        except StopIteration:
            deployment.done = True
        except MlmagicError as exc:
            raise WebserviceException(str(exc)) from exc
        if not deployment.done:
            threading.Thread(
                target=deployment._follow,
                args=(events,),
                name=f"mlmagic-deploy-{name}",
                daemon=True,
            ).start()
        service = Webservice(workspace, name)
        service._deployment = deployment
        if show_output:
            service.wait_for_deployment(show_output=True)
        return service

    def _follow(self, events: Generator[BuildEvent, None, Service]) -> None:
        try:
            for event in events:
                with self._changed:
                    self.events.append(event)
                    self._changed.notify_all()
        except MlmagicError as exc:
            self.error = exc
        except Exception as exc:  # a defect: still reported by wait_for_deployment
            self.error = MlmagicError(f"The deployment of {self.name} failed: {exc!r}")
        finally:
            with self._changed:
                self.done = True
                self._changed.notify_all()

    def wait(self, show_output: bool, timeout: float | None = None) -> MlmagicError | None:
        """Follow the deployment to its end (or ``timeout`` seconds); return its error."""
        shown = 0
        while True:
            with self._changed:
                idle = shown == len(self.events) and not self.done
                if idle and not self._changed.wait(timeout):
                    return MlmagicError(
                        f"{self.name} is still deploying after {timeout:g} s: call "
                        "wait_for_deployment() again, or look at get_logs()."
                    )
                new, finished = self.events[shown:], self.done
            shown += len(new)
            if show_output:
                for event in new:
                    _show(event)
            if finished and shown == len(self.events):
                return self.error


def _show(event: BuildEvent) -> None:
    if event.kind is BuildEventKind.STEP:
        print(event.step)
    elif event.kind in (BuildEventKind.LOG, BuildEventKind.ERROR):
        print(event.message)
