"""The demo database a new user meets first."""
import nsl
from nsl.core.demo import make_demo


def test_demo_database_has_a_verified_history(tmp_path):
    made = make_demo(tmp_path / "demo.db")
    db = nsl.open(made["path"])
    assert [e["commit"] for e in nsl.log(db)] == made["commits"][::-1]
    assert nsl.verify(db).ok
    assert nsl.get(db, "cities", "London")["population"] == 8799800
    assert [o["name"] for o in nsl.find(db, "people", {"born": {"$gt": 1900}}, sort="born")] == [
        "Grace Hopper", "Alan Turing", "Edsger Dijkstra"]
    again = make_demo(tmp_path / "demo.db")  # replaced, not appended to
    assert len(again["commits"]) == 5 and len(nsl.log(nsl.open(again["path"]))) == 5
