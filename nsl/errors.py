"""The one error hierarchy of nsl: every failure the core can report, with the data it concerns.

Each class carries its exit code (for the CLI) and HTTP status and stable code (for the server), so
the two faces map errors in one place each and never guess.
"""
from __future__ import annotations


class NslError(Exception):
    """An operation failed; the database is unchanged."""

    exit_code = 1
    http_status = 500
    code = "error"
    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None, **data):
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint
        self.data = data

    def to_dict(self) -> dict:
        out = {"code": self.code, "message": self.message}
        if self.hint:
            out["hint"] = self.hint
        return out


class BadInput(NslError):
    """The input itself is wrong: invalid JSON, a bad name, an unknown operator."""

    exit_code = 2
    http_status = 400
    code = "bad_input"


class InvalidJSON(BadInput):
    code = "invalid_json"


class InvalidObject(BadInput):
    http_status = 422
    code = "invalid_object"


class InvalidName(BadInput):
    code = "invalid_name"


class InvalidPredicate(BadInput):
    code = "invalid_predicate"


class ValueOutOfRange(BadInput):
    http_status = 422
    code = "value_out_of_range"


class AmbiguousRef(BadInput):
    code = "ambiguous_ref"


class ReadOnlySQL(BadInput):
    http_status = 403
    code = "read_only"


class NotANslDatabase(BadInput):
    code = "not_nsl_database"
    hint = "run `nsl init` to create a nsl database (or to adopt this SQLite file)"


class NotFound(NslError):
    http_status = 404
    code = "not_found"


class NoDatabase(NotFound):
    code = "no_database"
    hint = "run `nsl init` to create one, or point --db / NSL_DB at an existing nsl database"


class UnknownTable(NotFound):
    code = "unknown_table"


class UnknownObject(NotFound):
    code = "unknown_object"


class UnknownCommit(NotFound):
    code = "unknown_commit"


class Locked(NslError):
    http_status = 503
    code = "locked"
    hint = "another nsl process (or SQLite client) is writing; try again when it is done"


class CheckedOut(NslError):
    http_status = 409
    code = "checked_out"


class KeyColumnMissing(NslError):
    """A tracked table lost its key column to a change made outside nsl (renamed or dropped)."""

    http_status = 409
    code = "key_column_missing"


class NothingToCommit(NslError):
    http_status = 409
    code = "nothing_to_commit"


class UncommittedChanges(NslError):
    http_status = 409
    code = "uncommitted_changes"
    hint = "record them with `nsl commit -m MSG` or discard them with `nsl restore`"


class RevertConflict(NslError):
    http_status = 409
    code = "revert_conflict"


class SQLError(BadInput):
    """SQL given by the user failed inside SQLite."""

    code = "sql_error"


class IntegrityError(NslError):
    """The database does not hold what its history says (verify found a difference)."""

    http_status = 500
    code = "integrity"


class BadArtifact(IntegrityError):
    """An artifact from another database is not what its name or its commit says."""

    http_status = 422
    code = "bad_artifact"


class SyncError(NslError):
    """A sync, push, pull or clone could not be done (the remote, the network, the protocol)."""

    http_status = 400
    code = "sync_error"


class ProtocolError(SyncError):
    """A message that is not a sync message of this protocol."""

    http_status = 400
    code = "protocol"


class PushRefused(SyncError):
    """The caller's token may pull but not push."""

    http_status = 403
    code = "push_refused"


class ProjectMismatch(SyncError):
    http_status = 409
    code = "project_mismatch"
    hint = "only databases cloned from one another sync; make a copy with `nsl clone URL PATH`"


class RemoteError(SyncError):
    """The remote answered with an error (its code and HTTP status are kept)."""

    code = "remote_error"

    def __init__(self, message, *, status=None, remote_code=None, **kw):
        super().__init__(message, status=status, remote_code=remote_code, **kw)
        self.status = status
        self.remote_code = remote_code


class UnknownRemote(NotFound):
    code = "unknown_remote"
    hint = "list remotes with `nsl remote list`; add one with `nsl remote add NAME URL`"


class SyncBusy(Locked):
    code = "sync_busy"
    hint = "another nsl sync, push, pull or clone is running on this database; try again when it is done"
