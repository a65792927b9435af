"""A Dagster Pipes channel through one temporary Unity Catalog Volume folder per launch.

dagster-databricks' Volume injector and reader each create, list and delete a temporary folder of their own,
and the reader lists its folder until it appears: eleven Files API calls for a launch whose task sends one
chunk of messages. Both sides of this channel share one folder that Dagster creates before the launch, so it
is readable from the start, and Dagster deletes exactly the files it knows of: six calls for the same launch.
The task side is unchanged: dagster_pipes' `PipesUnityCatalogVolumesContextLoader` and
`PipesUnityCatalogVolumesMessageWriter` read the context file and write numbered chunks into the folder.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from dagster import PipesContextInjector
from dagster._core.pipes.utils import PipesBlobStoreMessageReader
from dagster_pipes import PipesBlobStoreMessageWriter, PipesParams

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


class LaunchFolderMessageReader(PipesBlobStoreMessageReader):
    """Reads the numbered chunks the task's Volume message writer puts into the launch folder."""

    def __init__(self, folder: LaunchFolder, interval: float) -> None:
        super().__init__(interval=interval)
        self.folder = folder

    @contextmanager
    def get_params(self) -> Iterator[PipesParams]:
        self.folder.create()
        # The task's stdout and stderr stay in its Databricks log; Pipes carries only the results.
        yield {"path": self.folder.path, PipesBlobStoreMessageWriter.INCLUDE_STDIO_IN_MESSAGES_KEY: False}

    def messages_are_readable(self, params: PipesParams) -> bool:
        return True  # Dagster created the folder before the launch

    def download_messages_chunk(self, index: int, params: PipesParams) -> str | None:
        from databricks.sdk.errors import NotFound

        path = f"{params['path']}/{index}.json"
        try:
            response = self.folder.files.download(path)
        except (NotFound, OSError):
            return None  # not written yet
        self.folder.known_files.add(path)
        contents: Any = response.contents
        return contents.read().decode("utf-8") if contents is not None else None

    def no_messages_debug_text(self) -> str:
        return (
            f"Dagster reads Pipes messages from {self.folder.path}; the task must write them with "
            "PipesUnityCatalogVolumesMessageWriter."
        )
