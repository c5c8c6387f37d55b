"""Errors with messages a user can act on.

`SkipInput` marks one bad input file: batch jobs catch it (Beam's dead-letter output), record the file and reason in
the manifest and go on.  `LayoutError` is a wrong `--input`: the job stops at once and says what layout it expected.
"""

import ast
import json


class MusicgenError(Exception):
    """Base class of this package's errors."""


class SkipInput(MusicgenError):
    """One input cannot be used; `reason` is short and stable so manifests can count reasons."""

    def __init__(self, path: str, reason: str, detail: str = ""):
        self.path = str(path)
        self.reason = reason
        self.detail = detail
        # Beam's dead-letter output keeps only repr(exception): store the fields as JSON so they survive it.
        super().__init__(json.dumps({"path": self.path, "reason": reason, "detail": detail}, ensure_ascii=False))

    def __str__(self):
        return f"{self.path}: {self.reason}" + (f" ({self.detail})" if self.detail else "")

    def __reduce__(self):  # keep picklable across Beam workers
        return (SkipInput, (self.path, self.reason, self.detail))

    @classmethod
    def from_repr(cls, text: str) -> "SkipInput":
        """Rebuild from `repr(SkipInput(...))`, the form Beam's dead-letter output carries."""
        fields = json.loads(ast.literal_eval(text[text.index("(") + 1:text.rindex(")")]))
        return cls(fields["path"], fields["reason"], fields["detail"])


class LayoutError(MusicgenError):
    """The input folder does not have the on-disk layout the dataset reader expects."""


class SchemaMismatchError(MusicgenError):
    """TFRecords were written with another schema version or representation parameters than the ones asked for."""
