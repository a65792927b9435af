"""The task's Pipes message writer: numbered chunks in the launch folder, the last one the moment Pipes closes.

dagster_pipes' Volume writer uploads from a thread that sleeps a whole second between looks at its buffer,
so a task spends up to two seconds after its build before its final chunk is written and the thread ends.
This channel waits on the close event itself: the final chunk goes out as soon as the task closes Pipes.
Chunk names and contents are the stock writer's, so Dagster's readers read them unchanged.
"""

from __future__ import annotations

import json
from io import StringIO
from threading import Event

from dagster_pipes import (
    PipesBufferedFilesystemMessageWriterChannel,
    PipesParams,
    PipesUnityCatalogVolumesMessageWriter,
)


class PromptFilesystemChannel(PipesBufferedFilesystemMessageWriterChannel):
    def _upload_loop(self, is_session_closed: Event) -> None:
        while not is_session_closed.wait(self._interval):
            self._upload_buffered()
        self._upload_buffered()

    def _upload_buffered(self) -> None:
        payload = "\n".join(json.dumps(message) for message in self.flush_messages())
        if payload:
            self.upload_messages_chunk(StringIO(payload), self._counter)
            self._counter += 1


class PromptVolumesMessageWriter(PipesUnityCatalogVolumesMessageWriter):
    def make_channel(self, params: PipesParams) -> PromptFilesystemChannel:
        path = params.get("path")
        if not isinstance(path, str):
            raise TypeError(f"Pipes message params carry no Volume path: {params!r}")
        return PromptFilesystemChannel(path=path, interval=self.interval)
