"""Bad input and failed operations, through the real command line.

Every failure must: exit with the code nsl/errors.py gives it (1 failed, 2 bad usage or input), print
one `error:` line on stderr naming the problem, print nothing on stdout, and leave the database exactly
as it was (head, log, and every table, index, trigger and row of the file), with `nsl verify` clean.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3

import pytest

import nsl as nsllib
from nsl.errors import (
    AmbiguousRef,
    BadInput,
    CheckedOut,
    InvalidJSON,
    InvalidObject,
    InvalidPredicate,
    NoDatabase,
    NotANslDatabase,
    ReadOnlySQL,
    SQLError,
    UnknownCommit,
    UnknownObject,
    UnknownTable,
    ValueOutOfRange,
)

from clitools import PEOPLE, Nsl, assert_one_error

BIG = "123456789012345678901234567890"


def refused(db: Nsl, args, exit_code, *words, input=None):
    """Run a command that must fail cleanly and change nothing; returns its result."""
    before = db.snapshot()
    r = db(*args, input=input)
    assert_one_error(r, exit_code, *words)
    db.assert_unchanged(before, verify=True)
    return r


# ---- invalid JSON and values given to save ---------------------------------------------------------

@pytest.mark.parametrize("text", [
    '{"id": 7,',
    "{bad",
    "{'id': 7}",
    '{"id": 7} trailing',
    '{"id": NaN}',
    '{"id": 7, "x": Infinity}',
    "",
])
def test_save_invalid_json_argument(people, text):
    words = ("nothing to save",) if text == "" else ("invalid json",)
    code = InvalidObject.exit_code if text == "" else InvalidJSON.exit_code
    refused(people, ["save", "people", text], code, *words)


@pytest.mark.parametrize("stdin", [
    '{"id": 7,\n',
    "not json at all\n",
    '[{"id": 7}, {"id": 8},]\n',
    '[{"id": 7}, {"id": 8}\n',
])
def test_save_invalid_json_on_stdin(people, stdin):
    refused(people, ["save", "people"], InvalidJSON.exit_code, "invalid json", input=stdin)
    refused(people, ["save", "people", "-"], InvalidJSON.exit_code, "invalid json", input=stdin)


def test_save_bad_line_in_the_middle_of_json_lines_stores_nothing(people):
    lines = [json.dumps({"id": 100 + i, "name": f"n{i}"}) for i in range(10)]
    lines[5] = '{"id": 105, "name": "broken"'
    r = refused(people, ["save", "people"], InvalidJSON.exit_code, "line 6", "invalid json",
                input="\n".join(lines) + "\n")
    assert "line 6" in r.error_lines[0]
    for k in (100, 104, 106):
        assert_one_error(people("get", "people", k), UnknownObject.exit_code, "no object")


def test_save_bad_line_after_many_batches_stores_nothing(people):
    """Thousands of good lines (several write batches, more than one read block) before the bad one."""
    good = "".join(json.dumps({"id": 1000 + i, "name": "x" * 200, "n": i}) + "\n" for i in range(12000))
    refused(people, ["save", "people"], InvalidJSON.exit_code, "line 12001", "invalid json",
                input=good + '{"id": oops}\n' + '{"id": 999999}\n')
    assert people.table_count("people") == len(PEOPLE)


def test_save_big_integer_in_the_middle_of_json_lines_stores_nothing(people):
    lines = [json.dumps({"id": 100 + i}) for i in range(5)]
    lines[3] = '{"id": 103, "n": %s}' % BIG
    refused(people, ["save", "people"], ValueOutOfRange.exit_code, BIG, "64 bits",
            input="\n".join(lines) + "\n")


@pytest.mark.parametrize("text, words", [
    ("42", ["expected a json object", "number"]),
    ('"x"', ["expected a json object", "string"]),
    ("[1,2]", ["expected a json object", "number"]),
    ("null", ["expected a json object"]),
    ("true", ["expected a json object"]),
    ('[{"id": 8}, "x"]', ["object 2", "expected a json object", "string"]),
    ("[]", ["nothing to save"]),
])
def test_save_non_object(people, text, words):
    refused(people, ["save", "people", text], InvalidObject.exit_code, *words)


def test_save_non_object_on_stdin(people):
    refused(people, ["save", "people"], InvalidObject.exit_code, "object 2", "expected a json object",
            input='{"id": 8}\n42\n{"id": 9}\n')


@pytest.mark.parametrize("text", [
    '{"id": 1, "n": %s}' % BIG,
    '{"id": 9, "n": -%s}' % BIG,
    '{"id": 9, "n": 9223372036854775808}',
    '{"id": 9, "deep": {"a": [1, %s]}}' % BIG,
    '{"id": %s}' % BIG,
])
def test_save_integer_outside_64_bits_is_refused_not_rounded(people, text):
    refused(people, ["save", "people", text], ValueOutOfRange.exit_code, "64 bits")
    # Ada (id 1) still has exactly her old attributes: nothing was rounded into "n".
    assert people.ok("get", "people", "1", "--json").json == {**PEOPLE[0], "age": 37}


def test_save_largest_64_bit_integers_are_kept_exactly(people):
    people.ok("save", "nums", '{"id": 1, "max": 9223372036854775807, "min": -9223372036854775808}')
    assert people.ok("get", "nums", "1", "--json").stdout.strip() == \
        '{"id":1,"max":9223372036854775807,"min":-9223372036854775808}'


@pytest.mark.parametrize("key, word", [
    ("1.5", "number"), ("1.0", "number"), ("true", "boolean"), ("false", "boolean"),
    ('{"a": 1}', "object"), ("[1]", "array"),
])
def test_save_key_of_the_wrong_type(people, key, word):
    refused(people, ["save", "people", '{"id": %s, "name": "x"}' % key], InvalidObject.exit_code,
            "key 'id'", "string or an integer", word)


def test_save_key_of_the_wrong_type_in_a_new_table_creates_no_table(people):
    refused(people, ["save", "newtable", '[{"id": 1}, {"id": 2.5}]'], InvalidObject.exit_code, "key 'id'")
    assert "newtable" not in people.user_tables()


def test_save_with_no_input_at_all(people):
    refused(people, ["save", "people"], InvalidObject.exit_code, "nothing to save", input="")


# ---- find: predicates and options --------------------------------------------------------------------

@pytest.mark.parametrize("pred, words", [
    ('{"a": {"$foo": 1}}', ["unknown operator", "$foo"]),
    ('{"$foo": 1}', ["unknown operator", "$foo"]),
    ('{"age": {"$gt": [1]}}', ["$gt"]),
    ('{"age": {"$in": 3}}', ["$in", "array"]),
    ('{"name": {"$regex": "("}}', ["regular expression"]),
    ('{"$or": []}', ["$or"]),
])
def test_find_invalid_predicate(people, pred, words):
    refused(people, ["find", "people", pred], InvalidPredicate.exit_code, *words)


@pytest.mark.parametrize("pred", ["[1]", '"x"', "1", "null", "[]"])
def test_find_predicate_that_is_not_an_object(people, pred):
    refused(people, ["find", "people", pred], InvalidPredicate.exit_code, "predicate", "json object")


def test_find_predicate_that_is_not_json(people):
    refused(people, ["find", "people", "{age: 3}"], InvalidJSON.exit_code, "invalid json")


def _nested(n, inner, wrap):
    for _ in range(n):
        inner = wrap(inner)
    return json.dumps(inner)


@pytest.mark.parametrize("pred", [
    _nested(250, {"age": 1}, lambda p: {"$and": [p]}),
    _nested(600, {"$gt": 1}, lambda p: {"$not": p}).join(['{"age": ', "}"]),
    _nested(900, 1, lambda v: [v]).join(['{"tags": ', "}"]),
], ids=["and-250", "not-600", "array-900"])
def test_find_predicate_nested_too_deeply(people, pred):
    r = refused(people, ["find", "people", pred], InvalidPredicate.exit_code, "nests", "too deeply", "flatten it")
    assert "Traceback" not in r.stderr and "RecursionError" not in r.stderr
    refused(people, ["delete", "people", "--where", pred], InvalidPredicate.exit_code, "too deeply", "flatten it")


def test_find_json_nested_too_deeply_for_the_parser(people):
    # Integers beyond 64 bits take the exact (Python) parser, which must not overflow its stack either.
    pred = '{"tags": ' + "[" * 990 + BIG + "]" * 990 + "}"
    r = refused(people, ["find", "people", pred], InvalidJSON.exit_code, "invalid json", "too deeply")
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("opts, words", [
    (["--limit", "-1"], ["--limit", "0 or more"]),
    (["--skip", "-3"], ["--skip", "0 or more"]),
    (["--sort", ""], ["sort field", "empty"]),
    (["--sort", "age,"], ["sort field", "empty"]),
    (["--fields", ""], ["field", "--fields"]),
    (["--fields", "name,,age"], ["field", "--fields"]),
])
def test_find_invalid_options(people, opts, words):
    refused(people, ["find", "people", *opts], BadInput.exit_code, *words)


def test_find_limit_zero_means_no_limit(people):
    # As in MongoDB: a limit of 0 is no limit.
    assert [o["id"] for o in people.ok("find", "people", "--limit", "0", "--json").json] == [1, 2, 3]
    assert [o["id"] for o in people.ok("find", "people", "--limit", "0", "--skip", "1", "--json").json] == [2, 3]


@pytest.mark.parametrize("fmt", [
    "--jsonl", "--csv", "--json",
])
def test_find_invalid_input_prints_nothing_on_stdout_in_any_format(people, fmt):
    refused(people, ["find", "people", "--limit", "-1", fmt], BadInput.exit_code, "--limit")
    refused(people, ["find", "people", '{"a": {"$foo": 1}}', fmt], InvalidPredicate.exit_code, "$foo")


def test_find_unknown_table(people):
    refused(people, ["find", "nosuch"], UnknownTable.exit_code, "no table", "nosuch", "people")


def test_delete_with_an_invalid_where(people):
    refused(people, ["delete", "people", "--where", '{"a": {"$foo": 1}}'], InvalidPredicate.exit_code, "$foo")
    refused(people, ["delete", "people", "--where", "[1]"], InvalidPredicate.exit_code, "json object")


# ---- odd table and column names: identifiers, never SQL ------------------------------------------------

ODD_TABLES = ['x"; DROP TABLE people; --', "select", "my table", "Robert'); DROP TABLE people;--",
              "a.b", "[people]", "`people`", "tab\u00e9 \u2603", "people--", "t;t"]
ODD_ATTRS = ['a"b', '"; DROP TABLE people; --', "select", "my attr", "a'b", "[x]", "from"]


def _people_intact(db: Nsl):
    assert db.ok("find", "people", "--json").json == [{**PEOPLE[0], "age": 37}, *PEOPLE[1:]]
    assert "people" in db.user_tables()


@pytest.mark.parametrize("table", ODD_TABLES)
def test_odd_table_name_is_an_identifier(people, table):
    before = people.user_tables()
    obj = {"id": 1, "name": "odd"}
    for a in ODD_ATTRS:
        obj[a] = f"value of {a}"
    r = people("save", table, json.dumps(obj))
    if r.returncode != 0:  # refusing the name is fine, as long as it is refused as bad input
        assert_one_error(r, 2, "name")
        assert people.user_tables() == before
        _people_intact(people)
        return
    # It worked: exactly one new table, holding exactly the object; nothing else touched.
    after = people.user_tables()
    assert set(after) == set(before) | {table}
    assert {k: v for k, v in after.items() if k != table} == before
    assert people.ok("get", table, "1", "--json").json == obj
    assert people.ok("find", table, "--json").json == [obj]
    assert people.ok("find", table, json.dumps({'a"b': 'value of a"b'}), "--json").json == [obj]
    assert people.ok("find", table, json.dumps({'"; DROP TABLE people; --': {"$exists": True}}),
                     "--json").json == [obj]
    assert people.ok("find", table, "--fields", 'a"b,select', "--json").json == \
        [{'a"b': 'value of a"b', "select": "value of select"}]
    assert people.ok("find", table, "--sort", '-"; DROP TABLE people; --', "--json").json == [obj]
    # Updates, history and deletion address the same table.
    people.ok("save", table, json.dumps({**obj, "name": "odder"}))
    assert [h["object"]["name"] for h in people.ok("history", table, "1", "--json").json] == ["odder", "odd"]
    people.ok("index", table, 'a"b')
    people.ok("delete", table, "1")
    assert people.ok("find", table, "--json").json == []
    _people_intact(people)
    people.assert_verify_ok()


@pytest.mark.parametrize("table", ["nsl_commit", "NSL_version", "sqlite_master", " people", "people ",
                                   "", "tab\nle", "tab\x01le"])
def test_reserved_or_malformed_table_names_are_refused(people, table):
    refused(people, ["save", table, '{"id": 1}'], 2, "invalid table name")
    _people_intact(people)


@pytest.mark.parametrize("attr", ["$where", "a.b", "", "x\ny", "ID"])
def test_reserved_or_clashing_attribute_names_are_refused(people, attr):
    refused(people, ["save", "people", json.dumps({"id": 9, attr: 1})], 2, "attribute")
    _people_intact(people)


@pytest.mark.parametrize("name", ['people"; DROP TABLE people; --', "people; DROP TABLE people",
                                  "people' OR '1'='1", "peop%"])
def test_odd_table_names_in_reading_commands_are_unknown_tables(people, name):
    for args in (["get", name, "1"], ["find", name], ["delete", name, "1"], ["history", name, "1"],
                 ["log", name], ["hash", name, "1"]):
        refused(people, args, UnknownTable.exit_code, "no table")
    _people_intact(people)


@pytest.mark.parametrize("key", ["1 OR 1=1", "1; DROP TABLE people", "' OR ''='", '1"', "%", "*"])
def test_odd_keys_are_values(people, key):
    refused(people, ["get", "people", key], UnknownObject.exit_code, "no object")
    refused(people, ["delete", "people", key], UnknownObject.exit_code, "no object", "nothing deleted")
    _people_intact(people)


def test_odd_field_names_in_find_options_are_identifiers(people):
    evil = '"; DROP TABLE people; --'
    assert people.ok("find", "people", json.dumps({evil: 1}), "--json").json == []
    assert len(people.ok("find", "people", "--sort", evil, "--json").json) == len(PEOPLE)
    assert people.ok("find", "people", "--fields", evil, "--jsonl").jsonl == [{}, {}, {}]
    refused(people, ["index", "people", evil], 2, "no field")
    _people_intact(people)
    people.assert_verify_ok()


# ---- not a database, not a nsl database ---------------------------------------------------------------

def test_missing_database(nsl):
    for args in (["head"], ["log"], ["find", "people"], ["save", "people", '{"id": 1}'], ["verify"],
                 ["status"], ["sql", "select 1"]):
        r = nsl(*args)
        assert_one_error(r, NoDatabase.exit_code, "no nsl database", str(nsl.db.name))
        assert "nsl init" in r.stderr
        assert not nsl.db.exists()
        assert not nsl.db.with_name(nsl.db.name + "-wal").exists()
    # --db wins over NSL_DB, and is named in the message.
    r = nsl("--db", "elsewhere.db", "head")
    assert_one_error(r, NoDatabase.exit_code, "elsewhere.db")
    assert not (nsl.cwd / "elsewhere.db").exists()


def _files(db):
    return {p.name: p.read_bytes() for p in db.parent.glob(db.name + "*")}


def _not_nsl(nsl: Nsl, r, *words):
    assert_one_error(r, NotANslDatabase.exit_code, *words)
    assert "nsl init" in r.stderr


def test_plain_sqlite_file_is_not_a_nsl_database(nsl):
    conn = sqlite3.connect(nsl.db)
    conn.executescript("CREATE TABLE people(id INTEGER PRIMARY KEY, name TEXT); INSERT INTO people VALUES (1, 'Ada');")
    conn.close()
    dump = nsl.dump()
    for args in (["head"], ["log"], ["find", "people"], ["get", "people", "1"], ["save", "people", '{"id": 2}'],
                 ["verify"], ["sql", "select * from people"], ["status"]):
        _not_nsl(nsl, nsl(*args), "not a nsl database")
    assert nsl.dump() == dump


@pytest.mark.parametrize("kind", ["plain", "empty"])
def test_not_a_nsl_database_file_is_left_byte_for_byte(nsl, kind):
    if kind == "plain":
        conn = sqlite3.connect(nsl.db)
        conn.executescript("CREATE TABLE people(id INTEGER PRIMARY KEY); INSERT INTO people VALUES (1);")
        conn.close()
    else:
        nsl.db.write_bytes(b"")
    files = _files(nsl.db)
    _not_nsl(nsl, nsl("head"), "not a nsl database")
    _not_nsl(nsl, nsl("save", "people", '{"id": 2}'), "not a nsl database")
    assert _files(nsl.db) == files


@pytest.mark.parametrize("content", [b"hello, I am a text file\n", b"SQLite format 2\x00" + b"x" * 100,
                                     bytes(range(256)) * 4])
def test_file_that_is_not_sqlite(nsl, content):
    nsl.db.write_bytes(content)
    for args in (["head"], ["find", "people"], ["save", "people", '{"id": 1}'], ["verify"]):
        _not_nsl(nsl, nsl(*args), "not a sqlite database")
    assert nsl.db.read_bytes() == content
    assert _files(nsl.db) == {nsl.db.name: content}


def test_directory_is_not_a_database(nsl):
    nsl.db.mkdir()
    _not_nsl(nsl, nsl("head"), "directory")


def test_corrupt_nsl_database_fails_cleanly(people):
    people.ok("head")
    raw = bytearray(people.db.read_bytes())
    raw[100:4096 * 3] = b"\xff" * (4096 * 3 - 100)
    people.db.write_bytes(bytes(raw))
    for p in people.db.parent.glob(people.db.name + "-*"):
        p.unlink()
    r = people("find", "people")
    assert r.returncode in (1, 2), str(r)
    assert len(r.error_lines) == 1 and "Traceback" not in r.stderr, str(r)
    assert r.stdout == ""


# ---- commit references ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ambiguous_db(tmp_path_factory):
    """A nsl database with two commits whose uuids share their first 4 hex digits (built in-process)."""
    path = tmp_path_factory.mktemp("ambiguous") / "amb.db"
    db, _ = nsllib.init(path)
    seen = {}
    pair = None
    for i in range(20000):
        c = nsllib.save(db, "things", [{"id": i % 50, "n": i}], message=f"save {i}").commit
        if c[:4] in seen:
            pair = (seen[c[:4]], c)
            break
        seen[c[:4]] = c
    db.close()
    assert pair, "no two commits shared a 4-digit prefix"
    unknown = next(p for p in (f"{i:04x}" for i in range(1 << 16)) if p not in seen)
    return path, pair, unknown


@pytest.fixture
def amb(ambiguous_db, nsl):
    path, pair, unknown = ambiguous_db
    shutil.copy(path, nsl.db)
    return nsl, pair, unknown


@pytest.mark.parametrize("cmd", ["show", "checkout", "revert"])
def test_ambiguous_commit_prefix(amb, cmd):
    db, (a, b), _ = amb
    prefix = a[:4]
    r = refused(db, [cmd, prefix], AmbiguousRef.exit_code, "ambiguous", prefix)
    assert a[:12] in r.stderr and b[:12] in r.stderr
    # One more digit that tells them apart works (checked with show, which changes nothing).
    i = next(i for i in range(4, 40) if a[i] != b[i])
    assert db.ok("show", a[:i + 1], "--json").json["commit"] == a


@pytest.mark.parametrize("cmd", ["show", "checkout", "revert"])
@pytest.mark.parametrize("which", ["4 digits", "full uuid", "HEAD~N"])
def test_unknown_commit(amb, cmd, which):
    db, (a, _), unknown = amb
    ref = {"4 digits": unknown, "full uuid": unknown + "0" * 36, "HEAD~N": "HEAD~100000"}[which]
    refused(db, [cmd, ref], UnknownCommit.exit_code, ref)


@pytest.mark.parametrize("cmd", ["show", "checkout", "revert"])
@pytest.mark.parametrize("ref", ["abc", "xyz12345", "HEAD^", "HEAD~x", "-1"])
def test_malformed_commit_reference(amb, cmd, ref):
    db, _, _ = amb
    refused(db, [cmd, "--", ref] if ref.startswith("-") else [cmd, ref], 2, ref)


def test_restore_source_unknown_or_ambiguous(amb):
    db, (a, _), unknown = amb
    refused(db, ["restore", "--source", unknown], UnknownCommit.exit_code, unknown)
    refused(db, ["restore", "--source", a[:4]], AmbiguousRef.exit_code, "ambiguous")
    refused(db, ["diff", a[:4]], AmbiguousRef.exit_code, "ambiguous")


# ---- unknown keys, delete usage ---------------------------------------------------------------------------

def test_get_unknown_key(people):
    refused(people, ["get", "people", "99"], UnknownObject.exit_code, "no object", "99", "people")
    refused(people, ["hash", "people", "99"], UnknownObject.exit_code, "no object", "99")
    refused(people, ["history", "people", "99"], UnknownObject.exit_code, "no object", "99")


def test_delete_unknown_key_deletes_nothing(people):
    refused(people, ["delete", "people", "99"], UnknownObject.exit_code, "no object", "99", "nothing deleted")
    # A known key next to an unknown one: neither is deleted.
    refused(people, ["delete", "people", "1", "99"], UnknownObject.exit_code, "99", "nothing deleted")
    assert people.ok("get", "people", "1", "--json").json["name"] == "Ada"


def test_delete_usage(people):
    refused(people, ["delete", "people", "1", "--where", '{"id": 1}'], BadInput.exit_code, "keys", "--where")
    refused(people, ["delete", "people"], BadInput.exit_code, "keys", "--where")


def test_unknown_command_and_option_are_usage_errors(people):
    before = people.snapshot()
    for args in (["frobnicate"], ["find", "people", "--bogus"], ["save"], ["find", "people", "--limit", "ten"]):
        r = people(*args)
        assert r.returncode == 2, str(r)
        assert "Error" in r.stderr and r.stdout == ""
    people.assert_unchanged(before)


# ---- nsl sql ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sql", [
    "DELETE FROM people",
    "UPDATE people SET name = 'Eve'",
    "INSERT INTO people(id, name) VALUES (9, 'Eve')",
    "DROP TABLE people",
    "CREATE TABLE other(x)",
    "CREATE INDEX people_name ON people(name)",
    "ALTER TABLE people ADD COLUMN x",
])
def test_sql_write_without_write_flag_is_refused(people, sql):
    r = refused(people, ["sql", sql], ReadOnlySQL.exit_code, "read-only")
    assert "--write" in r.stderr
    _people_intact(people)


@pytest.mark.parametrize("sql", [
    "INSERT INTO nsl_commit(uuid, db, date, parents, objects_uuid, nlines) VALUES ('x', 'y', 'z', '', 'o', 0)",
    "UPDATE nsl_version SET content = NULL",
    "DELETE FROM nsl_version",
    "DELETE FROM nsl_commit",
    "UPDATE nsl_meta SET value = 'x' WHERE name = 'db_code'",
    "DROP TABLE nsl_version",
    "DROP INDEX nsl_version_obj",
    "CREATE INDEX evil ON nsl_version(content)",
])
def test_sql_write_to_nsl_tables_is_refused(people, sql):
    refused(people, ["sql", sql, "--write"], SQLError.exit_code, "nsl")
    _people_intact(people)


@pytest.mark.parametrize("sql", ["ALTER TABLE nsl_commit ADD COLUMN evil", "ALTER TABLE nsl_version RENAME TO x",
                                 "ALTER TABLE nsl_commit RENAME COLUMN meta TO m"])
def test_sql_write_cannot_alter_nsl_tables(people, sql):
    refused(people, ["sql", sql, "--write"], SQLError.exit_code, "nsl")


def test_sql_write_cannot_rewrite_history_through_a_trigger(people):
    before = people.snapshot()
    r = people("sql", "CREATE TRIGGER nsl_evil AFTER INSERT ON people BEGIN DELETE FROM nsl_version; END",
               "--write")
    if r.returncode == 0:
        people("sql", "INSERT INTO people(id, name) VALUES (9, 'Eve')", "--write")
    assert people.ok("log", "--json").json == before["log"]
    people.assert_verify_ok()


def test_sql_write_cannot_drop_change_tracking_triggers(people):
    before = people.snapshot()
    r = people("sql", "DROP TRIGGER nsl_upd_1", "--write")
    assert_one_error(r, SQLError.exit_code, "nsl")
    people.assert_unchanged(before)


@pytest.mark.parametrize("sql, words", [
    ("selec * from people", ["syntax error"]),
    ("select * from nosuch", ["no such table"]),
    ("select nosuch from people", ["no such column"]),
    ("select 1; select 2", ["one statement"]),
    ("select * from", ["incomplete input"]),
])
def test_sql_invalid(people, sql, words):
    refused(people, ["sql", sql], SQLError.exit_code, "sql", *words)
    refused(people, ["sql", sql, "--write"], SQLError.exit_code, "sql", *words)


def test_sql_write_that_fails_midway_changes_nothing(people):
    # The second row violates the primary key: the whole statement is undone.
    refused(people, ["sql", "INSERT INTO people(id, name) VALUES (50, 'a'), (1, 'dup')", "--write"],
            SQLError.exit_code, "unique")
    assert people.ok("status", "--json").json["changes"] == []


# ---- writes while an old commit is checked out ---------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["save", "people", '{"id": 9, "name": "Eve"}'],
    ["save", "other", '{"id": 1}'],
    ["delete", "people", "1"],
    ["delete", "people", "--where", '{"age": {"$gt": 0}}'],
    ["sql", "UPDATE people SET name = 'x'", "--write"],
    ["commit", "-m", "x"],
    ["revert", "HEAD"],
    ["restore"],
    ["restore", "--source", "HEAD~1", "people", "1"],
])
def test_writes_refused_while_checked_out(people, args):
    first = people.ok("log", "--json").json[-1]["commit"]
    people.ok("checkout", first[:8])
    assert people.ok("get", "people", "1", "--json").json["age"] == 36
    r = refused(people, args, CheckedOut.exit_code, "checked out", first[:12])
    assert "nsl checkout HEAD" in r.stderr
    # Returning works and shows the head again.
    people.ok("checkout", "HEAD")
    assert people.ok("get", "people", "1", "--json").json["age"] == 37
    people.assert_verify_ok()


def test_checkout_with_uncommitted_changes_is_refused(people):
    assert people.sqlite3("UPDATE people SET age = 99 WHERE id = 2").returncode == 0
    r = refused(people, ["checkout", "HEAD~1"], 1, "uncommitted")
    assert "nsl commit" in r.stderr
    refused(people, ["revert", "HEAD"], 1, "uncommitted")


def test_commit_with_nothing_to_commit(people):
    refused(people, ["commit", "-m", "nothing"], 1, "nothing to commit")


def test_bad_values_with_sha1_of_input_unchanged(people, tmp_path):
    """The input file a failed save read is not touched either (nsl never writes to its input)."""
    f = tmp_path / "in.jsonl"
    f.write_text('{"id": 5}\n{"id": 6, "n": %s}\n' % BIG)
    digest = hashlib.sha1(f.read_bytes()).hexdigest()
    with open(f, "rb") as fh:
        before = people.snapshot()
        r = people("save", "people", stdin=fh)
    assert_one_error(r, ValueOutOfRange.exit_code, "64 bits")
    people.assert_unchanged(before)
    assert hashlib.sha1(f.read_bytes()).hexdigest() == digest
