"""A Dagster Pipes channel through one temporary Unity Catalog Volume folder per launch.

dagster-databricks' Volume injector and reader each create, list and delete a temporary folder of their own,
and the reader lists its folder until it appears: eleven Files API calls for a launch whose task sends one
chunk of messages. Both sides of this channel share one folder that Dagster creates before the launch, so it
is readable from the start, and Dagster deletes exactly the files it knows of: six calls for the same launch.
Once the run has ended, the remaining chunks are read at once.
The task side is unchanged: dagster_pipes' `PipesUnityCatalogVolumesContextLoader` and
`PipesUnityCatalogVolumesMessageWriter` read the context file and write numbered chunks into the folder.
"""

from __future__ import annotations

import io
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from dagster import PipesContextInjector, PipesMessageHandler, PipesMessageReader
from dagster_pipes import PIPES_PROTOCOL_VERSION_FIELD, PipesBlobStoreMessageWriter, PipesParams

if TYPE_CHECKING:
    from dagster_pipes import PipesContextData
    from databricks.sdk import WorkspaceClient

CONTEXT_FILE = "context.json"


class LaunchFolder:
    """The launch's temporary folder in the Pipes Volume, and the files Dagster knows are in it."""

    def __init__(self, client: WorkspaceClient, volume_path: str) -> None:
        from databricks.sdk.service.files import FilesAPI

        self.files = FilesAPI(client.api_client)
        self.path = f"{volume_path.rstrip('/')}/tmp/{uuid.uuid4().hex}"
        self.known_files: set[str] = set()
        self._created = False

    def create(self) -> None:
        if not self._created:
            self.files.create_directory(self.path)
            self._created = True

    def remove(self) -> None:
        """Delete the files Dagster wrote or read, then the folder; list it only if something else is left."""
        from databricks.sdk.errors import DatabricksError, NotFound

        if not self._created:
            return
        for path in sorted(self.known_files):
            with suppress(NotFound):
                self.files.delete(path)
        try:
            self.files.delete_directory(self.path)
        except NotFound:
            return
        except DatabricksError:
            # Something Dagster never read is left (a chunk written after the reader stopped): empty the folder.
            for entry in self.files.list_directory_contents(self.path):
                if entry.path and not entry.is_directory:
                    self.files.delete(entry.path)
            self.files.delete_directory(self.path)


class LaunchFolderContextInjector(PipesContextInjector):
    def __init__(self, folder: LaunchFolder) -> None:
        self.folder = folder

    @contextmanager
    def inject_context(self, context_data: PipesContextData) -> Iterator[PipesParams]:
        # Entered before the message reader and left after it: the folder outlives every read of it.
        self.folder.create()
        path = f"{self.folder.path}/{CONTEXT_FILE}"
        self.folder.files.upload(path, io.BytesIO(json.dumps(context_data).encode()), overwrite=True)
        self.folder.known_files.add(path)
        try:
            yield {"path": path}
        finally:
            self.folder.remove()

    def no_messages_debug_text(self) -> str:
        return (
            f"Dagster wrote the Pipes context to {self.folder.path}/{CONTEXT_FILE}; the task must read it with "
            "PipesUnityCatalogVolumesContextLoader."
        )


class LaunchFolderMessageReader(PipesMessageReader):
    """Reads the numbered chunks the task's Volume message writer puts into the launch folder.

    While the run lasts it looks for a new chunk every `interval` seconds, for the task's live logs. Once the
    run has ended every chunk is written (the task writes its last one before it exits), so the rest are read
    at once, without the stock reader's one-second pauses.
    """

    def __init__(self, folder: LaunchFolder, interval: float) -> None:
        self.folder = folder
        self.interval = interval
        self._next_chunk = 1

    @contextmanager
    def read_messages(self, handler: PipesMessageHandler) -> Iterator[PipesParams]:
        self.folder.create()
        run_ended = threading.Event()
        reader = threading.Thread(target=self._read_while_running, args=(handler, run_ended), daemon=True)
        reader.start()
        try:
            # The task's stdout and stderr stay in its Databricks log; Pipes carries only the results.
            yield {"path": self.folder.path, PipesBlobStoreMessageWriter.INCLUDE_STDIO_IN_MESSAGES_KEY: False}
        finally:
            run_ended.set()
            reader.join()
            self._read_new_chunks(handler)

    def _read_while_running(self, handler: PipesMessageHandler, run_ended: threading.Event) -> None:
        while not run_ended.wait(self.interval):
            self._read_new_chunks(handler)

    def _read_new_chunks(self, handler: PipesMessageHandler) -> None:
        from databricks.sdk.errors import NotFound

        while not handler.received_closed_message:
            path = f"{self.folder.path}/{self._next_chunk}.json"
            try:
                contents: Any = self.folder.files.download(path).contents
            except (NotFound, OSError):
                return  # not written yet
            self.folder.known_files.add(path)
            self._next_chunk += 1
            for line in (contents.read().decode("utf-8") if contents is not None else "").splitlines():
                with suppress(json.JSONDecodeError):
                    message = json.loads(line)
                    if PIPES_PROTOCOL_VERSION_FIELD in message:
                        handler.handle_message(message)

    def no_messages_debug_text(self) -> str:
        return (
            f"Dagster reads Pipes messages from {self.folder.path}; the task must write them with "
            "PipesUnityCatalogVolumesMessageWriter."
        )
