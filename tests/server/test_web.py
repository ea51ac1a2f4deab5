"""The web interface at /.

First its files, with requests (on any machine): served by exact name only, with their content types,
caching headers and a CSP, public while the API needs a token, shipped as package data, and naming no
external URL. Then the page itself in real headless Chromium: Debian's `chromium` package driven by
playwright's Python package through `executable_path` (a browser is never downloaded; those tests are
skipped only when /usr/bin/chromium is absent, and .ci/run installs it). Every wait is bounded; the
screenshots are kept in artifacts/ at the repository's root.
"""
from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from pathlib import Path

import pytest

import nsl
from nsl.core import tokens
from nsl.server import static

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "nsl" / "server" / "web"
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 10_000  # every wait in the page is bounded by this
pytestmark = pytest.mark.timeout(90)

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"{CHROMIUM} is absent: install Debian's chromium package (apt-get install chromium; .ci/run does)")


# ---- the files, over plain HTTP ------------------------------------------------------------------

def test_page_and_files(served):
    api = served.api()
    r = api.get("/")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert r.headers["Cache-Control"] == "no-cache" and r.headers["ETag"].startswith('"')
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp and "script-src 'self'" in csp
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    page = r.text
    assert "<title>nsl</title>" in page
    # The page names each file with its version; fetched so, a file is cached for good.
    names = re.findall(r'"/static/([a-z.]+)\?v=([0-9a-f]+)"', page)
    assert {n for n, _ in names} == {"app.js", "style.css", "favicon.svg"}
    types = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8",
             "favicon.svg": "image/svg+xml"}
    for name, version in names:
        r = api.get(f"/static/{name}?v={version}")
        assert r.status_code == 200 and r.headers["Content-Type"] == types[name]
        assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert r.content == (WEB / name).read_bytes()
        assert "Content-Security-Policy" not in r.headers
        r = api.get(f"/static/{name}")  # no or another version: revalidate
        assert r.headers["Cache-Control"] == "no-cache"
        r2 = api.get(f"/static/{name}?v=0123")
        assert r2.headers["Cache-Control"] == "no-cache"
        # A conditional GET with the ETag: 304, no body.
        r3 = api.get(f"/static/{name}", headers={"If-None-Match": r.headers["ETag"]})
        assert r3.status_code == 304 and r3.content == b"" and r3.headers["ETag"] == r.headers["ETag"]
        assert api.get(f"/static/{name}", headers={"If-None-Match": '"other"'}).status_code == 200
    r = api.get("/", headers={"If-None-Match": api.get("/").headers["ETag"]})
    assert r.status_code == 304


BAD_FILES = ["nope.js", "index.htm", "APP.JS", "app.js%00", "%2E%2E%2Fapi.py", "..%2Fstatic.py", "%2E%2E",
             "__init__.py", "..%5C..%5Capi.py", "app.js%2F", "%2Fetc%2Fpasswd", "web%2Fapp.js",
             "~root", "app.js.bak", "%FF"]


def test_only_shipped_files_by_exact_name(served):
    api = served.api()
    for name in BAD_FILES:
        r = api.get("/static/" + name)
        assert 400 <= r.status_code < 500, (name, r.status_code)
        assert r.headers["Content-Type"] == "application/json"
        assert set(r.json()) == {"error"}
    for path in ("/static", "/static/", "/static/web/app.js", "/static/../api.py", "/web/app.js",
                 "/index.html", "/static/app.js/x"):
        r = api.get(path)
        assert r.status_code == 404 and r.json()["error"]["code"] in ("unknown_route", "unknown_file"), path
    for method in ("POST", "PUT", "DELETE"):
        r = api.request(method, "/")
        assert r.status_code == 405 and r.headers["Allow"] == "GET"
    assert api.get("/?x=1").status_code == 400  # unknown query parameters are refused as everywhere
    # What is served is exactly the shipped folder's web files.
    assert set(static.assets()) == {p.name for p in WEB.iterdir() if p.suffix in static.TYPES}


def test_page_is_public_while_the_api_needs_a_token(served):
    db = nsl.open(served.db_path)
    try:
        tokens.add(db, "t", "read")
    finally:
        db.close()
    anon = served.api()
    assert anon.get("tables").status_code == 401
    assert anon.get("/").status_code == 200
    assert anon.get("/static/app.js").status_code == 200
    r = anon.get("/", headers={"Authorization": "Bearer wrong"})  # a stale token does not break the page
    assert r.status_code == 200


def test_no_external_urls_in_the_shipped_files():
    """The machine may be offline: the page loads nothing from anywhere but its own server."""
    files = sorted(p for p in WEB.iterdir() if p.is_file())
    assert {p.name for p in files} >= {"index.html", "app.js", "style.css"}
    for p in files:
        text = p.read_text(encoding="utf-8")
        text = text.replace('xmlns="http://www.w3.org/2000/svg"', "")  # an SVG's namespace name, never fetched
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), p.name
        assert "@import" not in text and "url(" not in text, p.name
    page = (WEB / "index.html").read_text(encoding="utf-8")
    for ref in re.findall(r'(?:src|href)="([^"#]+)"', page):
        assert ref.startswith("/static/"), ref


def test_web_files_are_package_data():
    """`pip install .` ships the web folder (pyproject's package-data covers every file in it)."""
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = conf["tool"]["setuptools"]["package-data"]["nsl"]
    for p in WEB.iterdir():
        rel = p.relative_to(ROOT / "nsl").as_posix()
        assert any(fnmatch.fnmatch(rel, pat) for pat in patterns), f"{rel} is not package data"
    assert "playwright" in " ".join(conf["project"]["optional-dependencies"]["test"])


# ---- the page in Chromium ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright  # in the test extra

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=WAIT_MS)
        try:
            yield b
        finally:
            b.close()


class Page:
    """A playwright page on one server, recording what it asks for and any script error."""

    def __init__(self, browser, running):
        from playwright.sync_api import expect

        expect.set_options(timeout=WAIT_MS)
        self.url = running.url
        self.context = browser.new_context(base_url=running.url, viewport={"width": 1280, "height": 860},
                                           color_scheme="light")
        self.context.set_default_timeout(WAIT_MS)
        self.context.set_default_navigation_timeout(WAIT_MS)
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.console: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))

    def open(self, fragment: str = ""):
        self.page.goto("/" + fragment)
        self.page.locator("main h1").wait_for()
        return self.page

    def screenshot(self, name: str):
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        self.page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        return path

    def close(self):
        self.context.close()
        assert not self.errors, f"script errors in the page: {self.errors}"
        outside = [u for u in self.requests if not u.startswith(self.url + "/")]
        assert not outside, f"the page asked for something outside its server: {outside}"
        csp = [m for m in self.console if "Content Security Policy" in m]
        assert not csp, csp


@pytest.fixture
def web(browser, served):
    p = Page(browser, served)
    yield p
    p.close()


def main_text(page) -> str:
    return page.locator("main").inner_text()


def seed(api, table, objs, message=None):
    r = api.post(f"tables/{table}/objects", json=objs, params={"message": message} if message else None)
    assert r.status_code == 201, r.text
    return r.json()["commit"]


@needs_chromium
def test_add_an_object_through_the_page(web, served):
    from playwright.sync_api import expect

    api = served.api()
    page = web.open()
    expect(page.locator("main h1")).to_have_text("Tables")
    expect(page.locator("main")).to_contain_text("No tables yet")

    form = page.locator("form.add-form")
    form.get_by_label("Table", exact=True).fill("people")
    # Not JSON: refused in the page, nothing sent.
    form.get_by_label("Object (JSON)").fill("{oops")
    form.get_by_role("button", name="Save").click()
    expect(form.locator(".error")).to_contain_text("not valid JSON")
    # JSON the API refuses: its error is shown.
    form.get_by_label("Object (JSON)").fill('{"id": {"a": 1}}')
    form.get_by_role("button", name="Save").click()
    expect(form.locator(".error")).to_contain_text("invalid_object")
    assert api.get("tables").json() == {"tables": []}

    obj = {"id": 7, "name": "Ada", "born": 1815, "langs": ["en", "fr"], "addr": {"city": "London"}}
    form.get_by_label("Object (JSON)").fill(json.dumps(obj, indent=2))
    form.get_by_label("Commit message").fill("added in the browser")
    form.get_by_role("button", name="Save").click()
    expect(page.locator("main h1")).to_have_text("people / 7")
    expect(page.locator("#flash")).to_contain_text("Saved 1 object to people")
    expect(page.locator("#object-json")).to_contain_text('"city": "London"')

    assert api.get("tables/people/objects/7").json() == obj
    log = api.get("log").json()["commits"]
    assert [c["message"] for c in log] == ["added in the browser"]
    expect(page.locator("#head")).to_have_text("head " + log[0]["commit"][:10])

    # An array through the table's own "Add object" page: one commit, back to the table.
    page.goto("/#/t/people/new")
    page.get_by_label("Object (JSON)").fill('[{"id": 8, "name": "Alan"}, {"id": 9, "name": "Grace"}]')
    page.get_by_label("Object (JSON)").press("Control+Enter")  # the keyboard saves too
    expect(page.locator("#flash")).to_contain_text("Saved 2 objects")
    expect(page.locator("main h1")).to_have_text("people")
    assert [o["name"] for o in api.get("tables/people/objects").json()["objects"]] == ["Ada", "Alan", "Grace"]
    assert len(api.get("log").json()["commits"]) == 2


@needs_chromium
def test_browse_with_paging_and_a_predicate(web, served):
    from playwright.sync_api import expect

    api = served.api()
    seed(api, "people", [{"id": i, "name": f"person {i:02}", "age": 10 + 3 * i,
                          "tags": ["even"] if i % 2 == 0 else ["odd"], "home": {"city": "Paris" if i < 5 else "Rome"}}
                         for i in range(1, 26)], "25 people")
    page = web.open("#/")
    page.get_by_role("link", name="people", exact=True).click()
    expect(page.locator("main h1")).to_have_text("people")
    expect(page.locator("#table-meta")).to_have_text("25 objects · key id")
    rows = page.locator("main table.data tbody tr")
    expect(rows).to_have_count(20)

    page.get_by_label("Per page").select_option("10")
    expect(page.locator("#page-summary")).to_have_text("Objects 1–10")
    expect(rows).to_have_count(10)
    page.get_by_role("button", name="Next →").click()
    expect(page.locator("#page-summary")).to_have_text("Objects 11–20")
    expect(rows.first.locator("td").first).to_have_text("11")
    assert "limit=10" in page.url and "skip=10" in page.url  # the view is in the URL
    page.get_by_role("button", name="Next →").click()
    expect(page.locator("#page-summary")).to_have_text("Objects 21–25")
    expect(page.get_by_role("button", name="Next →")).to_be_disabled()
    page.go_back()
    expect(page.locator("#page-summary")).to_have_text("Objects 11–20")

    where = page.get_by_label("Where (JSON predicate)")
    where.fill('{"age": {"$gte": 70}, "tags": "even"}')
    page.get_by_label("Sort").fill("-age")
    where.press("Enter")
    expect(page.locator("#page-summary")).to_have_text("Objects 1–3 matching the predicate")
    keys = [t.strip() for t in rows.locator("td:first-child").all_inner_texts()]
    assert keys == ["24", "22", "20"]
    found = api.get("tables/people/objects", params={"where": json.dumps({"age": {"$gte": 70}, "tags": "even"}),
                                                     "sort": "-age"}).json()["objects"]
    assert [str(o["id"]) for o in found] == keys
    web.screenshot("web-browse.png")

    where.fill('{"home.city": "Paris"}')
    where.press("Enter")
    expect(page.locator("#page-summary")).to_have_text("Objects 1–4 matching the predicate")

    where.fill('{"age": {"$bogus": 1}}')
    where.press("Enter")
    expect(page.locator("main .results .error")).to_contain_text("invalid_predicate")
    where.fill("{age")
    where.press("Enter")
    expect(page.locator("main .results .error")).to_contain_text("not valid JSON")
    where.fill('{"name": "nobody"}')
    where.press("Enter")
    expect(page.locator("#page-summary")).to_have_text("No object matches the predicate.")
    page.get_by_role("button", name="Clear").click()
    expect(page.locator("#page-summary")).to_have_text("Objects 1–10")

    page.goto("/#/t/nope")
    expect(page.locator("main")).to_contain_text("unknown_table")


@needs_chromium
def test_edit_and_see_the_history_with_a_diff(web, served):
    from playwright.sync_api import expect

    api = served.api()
    big = 2 ** 63 - 1
    seed(api, "people", {"id": 1, "name": "Ada", "born": 1815, "big": big, "price": 3.0,
                         "addr": {"city": "London"}}, "add Ada")
    page = web.open("#/t/people/o/1")
    pre = page.locator("#object-json")
    expect(pre).to_contain_text(f'"big": {big}')  # not rounded to a double
    expect(pre).to_contain_text('"price": 3.0')   # still a REAL

    page.get_by_role("button", name="Edit").click()
    ta = page.get_by_label("Object (JSON)")
    text = ta.input_value()
    assert f'"big": {big}' in text and '"price": 3.0' in text
    ta.fill(text.replace('"born": 1815', '"born": 1816').replace('"London"', '"Londres"'))
    page.get_by_label("Commit message").fill("fix Ada")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("main .success")).to_contain_text("Saved in commit")
    expect(pre).to_contain_text('"born": 1816')

    after = api.get("tables/people/objects/1").json()
    assert after == {"id": 1, "name": "Ada", "born": 1816, "big": big, "price": 3.0, "addr": {"city": "Londres"}}
    assert isinstance(after["price"], float) and after["big"] == big
    assert api.get("log").json()["commits"][0]["message"] == "fix Ada"

    # An edit the API refuses (the key in the body differs from the URL's) shows its error.
    page.get_by_role("button", name="Edit").click()
    ta.fill('{"id": 2, "name": "Ada"}')
    page.get_by_role("button", name="Save").click()
    expect(page.locator("main .edit-form .error")).to_contain_text("bad_input")
    ta.press("Escape")
    expect(pre).to_be_visible()
    expect(page.get_by_role("button", name="Edit")).to_be_focused()

    page.get_by_role("link", name="History").click()
    expect(page.locator("main h1")).to_have_text("History of people / 1")
    versions = page.locator("main table.data").first.locator("tbody tr")
    expect(versions).to_have_count(2)
    expect(versions.first).to_contain_text("fix Ada")
    expect(page.locator("#diff-summary")).to_have_text("2 fields differ.")
    born = page.locator('table.diff tr[data-field="born"]')
    expect(born).to_have_class(re.compile(r"\bchanged\b"))
    expect(born.locator("td.a")).to_have_text("1815")
    expect(born.locator("td.b")).to_have_text("1816")
    expect(page.locator('table.diff tr[data-field="addr.city"] td.b')).to_have_text('"Londres"')
    expect(page.locator('table.diff tr[data-field="name"]')).to_have_count(0)
    page.get_by_label("show unchanged fields").check()
    expect(page.locator('table.diff tr[data-field="name"]')).to_have_class(re.compile(r"\bsame\b"))
    expect(page.locator('table.diff tr[data-field="big"] td.a')).to_have_text(str(big))
    web.screenshot("web-history.png")

    # Delete it through the page: confirmed first, then gone from the API, still in its history.
    page.goto("/#/t/people/o/1")
    page.get_by_role("button", name="Delete", exact=True).click()
    page.get_by_role("button", name="Keep it").click()
    assert api.get("tables/people/objects/1").status_code == 200
    page.get_by_role("button", name="Delete", exact=True).click()
    page.get_by_role("button", name="Delete it").click()
    expect(page.locator("#flash")).to_contain_text("Deleted people / 1")
    assert api.get("tables/people/objects/1").status_code == 404
    page.goto("/#/t/people/o/1/history")
    expect(versions).to_have_count(3)
    page.get_by_label("To (B)").select_option("0")
    page.get_by_label("From (A)").select_option("1")
    expect(page.locator("main .diff-out")).to_contain_text("is a deletion")
    expect(page.locator('table.diff tr[data-field="born"]')).to_have_class(re.compile(r"\bremoved\b"))


@needs_chromium
def test_a_link_followed_before_the_first_view_loads_still_moves_focus(web, served):
    from playwright.sync_api import expect

    seed(served.api(), "people", {"id": 1, "name": "Ada"}, "first")
    # The first view's list of tables is held back (a slow network), and the user goes on meanwhile.
    held = []
    web.page.route("**/api/v1/tables", lambda route: held.append(route))
    with web.page.expect_request("**/api/v1/tables"):
        web.page.goto("/#/")
    web.page.get_by_role("link", name="Log", exact=True).focus()
    web.page.keyboard.press("Enter")
    expect(web.page.locator("main h1")).to_have_text("Log")
    expect(web.page.locator("main h1")).to_be_focused()
    for _ in range(100):  # playwright hands the held request to the handler on its next call
        if held:
            break
        web.page.wait_for_timeout(50)
    assert held, "the first view did not ask for its tables"
    for route in held:
        route.continue_()
    # The late reply of the page the user left does not replace the view they went to.
    expect(web.page.locator("main table.data tbody tr")).to_have_count(1)
    expect(web.page.locator("main h1")).to_have_text("Log")
    assert not web.errors


@needs_chromium
def test_log_commit_head_and_verify(web, served):
    from playwright.sync_api import expect

    api = served.api()
    seed(api, "people", [{"id": 1, "name": "Ada"}, {"id": 2, "name": "Bob"}], "first")
    seed(api, "pets", {"id": "rex", "kind": "dog"}, "second")
    head = api.get("head").json()["head"]

    page = web.open("#/")
    # Keyboard only: a link reached with Tab and followed with Enter; the new view's heading gets focus.
    page.get_by_role("link", name="Log", exact=True).focus()
    page.keyboard.press("Enter")
    expect(page.locator("main h1")).to_have_text("Log")
    expect(page.locator("main h1")).to_be_focused()
    rows = page.locator("main table.data tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("second")
    expect(rows.nth(1)).to_contain_text("first")
    expect(rows.nth(1)).to_contain_text("+2 ~0 −0")
    rows.nth(1).get_by_role("link").click()
    expect(page.locator("main h1")).to_contain_text("Commit ")
    expect(page.locator("main")).to_contain_text("2 inserted, 0 updated, 0 deleted")
    lines = page.locator("main table.data tbody tr")
    expect(lines).to_have_count(2)
    expect(lines.first).to_contain_text("people")

    page.get_by_role("link", name="Status").click()
    expect(page.locator("#head-full")).to_have_text(head)
    page.get_by_role("button", name="Verify").click()
    result = page.locator("#verify-result")
    expect(result).to_contain_text("✓ verified")
    expect(result).to_contain_text(head)
    facts = dict(zip(result.locator("dt").all_inner_texts(), result.locator("dd").all_inner_texts()))
    assert facts["Commits"] == "2" and facts["Uncommitted"] == "0"
    assert "null" not in result.inner_text() and "undefined" not in result.inner_text()
    web.screenshot("web-status.png")

    # A change made outside nsl shows up as uncommitted in the next verify.
    db = nsl.open(served.db_path)
    try:
        db.conn.execute("UPDATE pets SET kind = 'cat'")
        db.conn.commit()
    finally:
        db.close()
    page.get_by_role("button", name="Verify").click()
    expect(result.locator("dd").nth(4)).to_have_text("1")


@needs_chromium
def test_api_explorer(web, served):
    from playwright.sync_api import expect

    api = served.api()
    seed(api, "people", {"id": 1, "name": "Ada"}, "seed")
    page = web.open("#/api")
    method, path, body = page.get_by_label("Method"), page.get_by_label("Path"), page.get_by_label("Body", exact=True)
    status, out = page.locator("#explorer-status"), page.locator("#explorer-body")

    page.get_by_role("button", name="GET /api/v1/head").click()
    page.get_by_role("button", name="Send").click()
    expect(status).to_have_text("200 OK")
    assert json.loads(out.inner_text()) == api.get("head").json()

    method.select_option("POST")
    path.fill("/api/v1/find")
    body.fill('{"table": 5}')
    page.get_by_role("button", name="Send").click()
    expect(status).to_have_text("400 Bad Request")
    assert json.loads(out.inner_text())["error"]["code"] == "bad_input"

    path.fill("/api/v1/tables/people/objects?message=from+the+explorer")
    body.fill('{"id": 2, "name": "Bob"}')
    body.press("Control+Enter")
    expect(status).to_have_text("201 Created")
    assert api.get("tables/people/objects/2").json() == {"id": 2, "name": "Bob"}
    assert api.get("log").json()["commits"][0]["message"] == "from the explorer"

    method.select_option("DELETE")
    path.fill("/api/v1/tables/people/objects/2")
    page.get_by_role("button", name="Send").click()
    expect(status).to_have_text("200 OK")
    assert api.get("tables/people/objects/2").status_code == 404

    method.select_option("GET")
    path.fill("/api/v1/nowhere")
    page.get_by_role("button", name="Send").click()
    expect(status).to_have_text("404 Not Found")
    expect(out).to_contain_text("unknown_route")

    n = len(web.requests)
    for elsewhere in ("https://example.com/api/v1/tables", "//example.com/x", "/\\example.com/x", "api/v1/tables"):
        path.fill(elsewhere)
        page.get_by_role("button", name="Send").click()
        expect(page.locator("main .explorer-out .error")).to_contain_text("this server only")
    assert len(web.requests) == n


@needs_chromium
def test_token_protected_server(web, served):
    from playwright.sync_api import expect

    db = nsl.open(served.db_path)
    try:
        admin, reader = tokens.add(db, "admin", "admin"), tokens.add(db, "reader", "read")
    finally:
        db.close()
    seed(served.api(admin), "people", {"id": 1, "name": "Ada"}, "seed")

    page = web.open()
    panel = page.locator("#token-panel")
    expect(panel).to_be_visible()
    expect(page.locator("#token-reason")).to_contain_text("needs a token")
    expect(page.locator("main")).to_contain_text("401 unauthorized")
    expect(page.locator("#token-input")).to_be_focused()
    web.screenshot("web-token.png")

    page.locator("#token-input").fill("nsl_not_a_token")
    page.locator("#token-input").press("Enter")
    expect(page.locator("#token-reason")).to_contain_text("refused")
    expect(panel).to_be_visible()

    page.locator("#token-input").fill(reader)
    page.get_by_role("button", name="Use token").click()
    expect(panel).to_be_hidden()
    expect(page.get_by_role("link", name="people", exact=True)).to_be_visible()
    assert page.evaluate("localStorage.getItem('nsl.token')") == reader

    # The read token may not write: the 403 is shown, nothing changes.
    form = page.locator("form.add-form")
    form.get_by_label("Table", exact=True).fill("people")
    form.get_by_label("Object (JSON)").fill('{"id": 2, "name": "Bob"}')
    form.get_by_role("button", name="Save").click()
    expect(form.locator(".error")).to_contain_text("403 forbidden")
    assert served.api(admin).get("tables/people/objects/2").status_code == 404

    # Kept across a reload; replaced with a writer's token, writing works.
    page.reload()
    expect(page.get_by_role("link", name="people", exact=True)).to_be_visible()
    expect(panel).to_be_hidden()
    page.get_by_role("button", name="Token", exact=True).click()
    page.locator("#token-input").fill(admin)
    page.locator("#token-input").press("Enter")
    page.goto("/#/t/people/new")
    page.get_by_label("Object (JSON)").fill('{"id": 2, "name": "Bob"}')
    page.get_by_role("button", name="Save").click()
    expect(page.locator("main h1")).to_have_text("people / 2")
    assert served.api(admin).get("tables/people/objects/2").json() == {"id": 2, "name": "Bob"}
    assert served.api(admin).get("log").json()["commits"][0]["author"] == "admin"

    # Forgotten, the page asks again.
    page.get_by_role("button", name="Token", exact=True).click()
    page.get_by_role("button", name="Forget token").click()
    assert page.evaluate("localStorage.getItem('nsl.token')") is None
    page.reload()
    expect(panel).to_be_visible()


@needs_chromium
def test_resolve_a_conflict_through_the_page(browser, served, tmp_path):
    """Two databases change one object and sync; the page lists the conflict side by side, and
    keeping the other side merges it (seen through the API, and in the other database after a sync)."""
    from playwright.sync_api import expect

    from nsl.sync import client
    from nsl.sync.clone import clone

    api = served.api()
    seed(api, "people", [{"id": 1, "name": "Ada", "born": 1815}], "seed")
    clone(served.url, tmp_path / "laptop.db")
    seed(api, "people", [{"id": 1, "name": "Ada Lovelace", "born": 1815}], "on the server")
    laptop = nsl.open(tmp_path / "laptop.db")
    try:
        import time

        time.sleep(0.005)
        nsl.save(laptop, "people", [{"id": 1, "name": "Ada", "born": 1816}], message="on the laptop")
        client.run(laptop, served.url)
        web = Page(browser, served)
        try:
            page = web.open("#/conflicts")
            expect(page.locator("main h1")).to_have_text("Conflicts")
            section = page.locator("section.conflict[data-key='people/1']")
            expect(section).to_contain_text("born: 1815 → 1816")         # ours: the laptop's, newer
            expect(section).to_contain_text('name: "Ada" → "Ada Lovelace"')  # theirs: the server's
            web.screenshot("web-conflicts.png")
            section.locator("tr[data-side='theirs']").get_by_role("button", name="Keep this one").click()
            expect(page.locator("#flash")).to_contain_text("Resolved people/1")
            expect(page.locator("#no-conflicts")).to_be_visible()
        finally:
            web.close()
        assert api.get("conflicts").json() == {"conflicts": []}
        assert api.get("tables/people/objects/1").json() == {"id": 1, "name": "Ada Lovelace", "born": 1815}
        client.run(laptop, served.url)
        assert nsl.get(laptop, "people", 1)["name"] == "Ada Lovelace"
        assert nsl.verify(laptop).ok
    finally:
        laptop.close()
