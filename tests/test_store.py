"""The workspace store: exact round trips, replace-on-save, all-or-nothing writes, where it lives, reviews."""

from __future__ import annotations

import pydantic_core
import pytest
import sqlalchemy as sa

import core.data.store as store
from core.data.models import GraphEdge
from core.data.store import Workspace


def _count(ws: Workspace, table: sa.Table) -> int:
    with ws.engine.connect() as c:
        return c.execute(sa.select(sa.func.count()).select_from(table)).scalar()


def test_save_then_load_gives_back_the_same_domain(tmp_path, bike_domain):
    ws = Workspace(tmp_path)
    ws.save_domain(bike_domain)
    assert Workspace(tmp_path).load_domain("bike_rental").model_dump() == bike_domain.model_dump()


def test_the_workspace_is_sqlite_in_wal_mode(tmp_path):
    ws = Workspace(tmp_path)
    assert ws.url == f"sqlite:///{(tmp_path / 'workspace.db').resolve()}"
    with ws.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_saving_again_replaces_without_duplicates(tmp_path, bike_domain):
    ws = Workspace(tmp_path)
    ws.save_domain(bike_domain)
    counts = {t.name: _count(ws, t) for t in (store.domains_t, store.rows_t, store.tools_t, store.results_t,
                                                store.edges_t)}
    changed = bike_domain.model_copy(update={"seconds": 99.0})
    ws.save_domain(changed)
    assert ws.domain_names() == ["bike_rental"]
    assert {t.name: _count(ws, t) for t in (store.domains_t, store.rows_t, store.tools_t, store.results_t,
                                             store.edges_t)} == counts
    assert ws.load_domain("bike_rental").seconds == 99.0
    assert [s.name for s in ws.list_domains()] == ["bike_rental"]


def test_a_failed_save_leaves_the_previous_version_intact(tmp_path, bike_domain, monkeypatch):
    ws = Workspace(tmp_path)
    ws.save_domain(bike_domain)
    before = {t.name: _count(ws, t) for t in (store.rows_t, store.tools_t, store.results_t, store.edges_t)}

    def boom(self, *a, **kw):  # edges are written last: rows, tools and results are already in the transaction
        raise RuntimeError("disk unplugged")

    monkeypatch.setattr(GraphEdge, "model_dump_json", boom)
    newer = bike_domain.model_copy(update={"seconds": 123.0, "rows": {**bike_domain.rows, "riders": []}})
    with pytest.raises(RuntimeError, match="disk unplugged"):
        ws.save_domain(newer)
    monkeypatch.undo()
    assert Workspace(tmp_path).load_domain("bike_rental").model_dump() == bike_domain.model_dump()
    assert {t.name: _count(ws, t) for t in (store.rows_t, store.tools_t, store.results_t, store.edges_t)} == before


def test_a_failed_first_save_leaves_no_half_domain(tmp_path, bike_domain, monkeypatch):
    ws = Workspace(tmp_path)
    monkeypatch.setattr(GraphEdge, "model_dump_json", lambda self, *a, **kw: 1 / 0)
    with pytest.raises(ZeroDivisionError, match="division by zero"):
        ws.save_domain(bike_domain)
    assert ws.domain_names() == []
    assert _count(ws, store.rows_t) == _count(ws, store.tools_t) == _count(ws, store.results_t) == 0


def test_scaleenv_workspace_env_var_is_honoured(tmp_path, bike_domain, monkeypatch):
    where = tmp_path / "from-env"
    monkeypatch.setenv("SCALEENV_WORKSPACE", str(where))
    ws = Workspace()
    assert ws.url == f"sqlite:///{(where / 'workspace.db').resolve()}"
    ws.save_domain(bike_domain)
    assert (where / "workspace.db").exists()
    assert Workspace(where).domain_names() == ["bike_rental"]
    assert Workspace(tmp_path / "explicit").domain_names() == []  # an explicit location wins over the variable


def test_default_workspace_is_in_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("SCALEENV_WORKSPACE", raising=False)
    monkeypatch.chdir(tmp_path)
    ws = Workspace()
    assert ws.url == f"sqlite:///{(tmp_path / 'scaleenv-workspace' / 'workspace.db').resolve()}"


def test_a_sqlalchemy_url_works(tmp_path, bike_domain):
    url = f"sqlite:///{tmp_path / 'team.sqlite'}"
    Workspace(url).save_domain(bike_domain)
    ws = Workspace(url)
    assert ws.url == url
    assert ws.load_domain("bike_rental").model_dump() == bike_domain.model_dump()


def test_a_db_file_path_works(tmp_path, bike_domain):
    path = tmp_path / "sub" / "ws.db"
    Workspace(path).save_domain(bike_domain)
    assert Workspace(path).domain_names() == ["bike_rental"]


def test_stats_and_errors(tmp_path, bike_domain):
    ws = Workspace(tmp_path)
    ws.save_domain(bike_domain)
    assert ws.list_domains() == [bike_domain.stats()]
    with pytest.raises(store.WorkspaceError, match=r"no domain 'nope' .*\(domains: bike_rental\)"):
        ws.load_domain("nope")
    ws.delete_domain("bike_rental")
    assert ws.domain_names() == [] and _count(ws, store.rows_t) == 0


def test_a_bad_url_is_a_workspace_error():
    with pytest.raises(store.WorkspaceError, match="cannot open workspace"):
        Workspace("nosuchdialect://x/y")


# ---------------------------------------------------------------------- tasks


@pytest.fixture(scope="module")
def bike_tasks(bike_domain):
    from core.tasks.generator import TaskGenerator

    tasks, _ = TaskGenerator(bike_domain, seed=0).generate(6)
    assert len(tasks) == 6, "test setup"
    return tasks


@pytest.fixture
def ws_with_tasks(tmp_path, bike_domain, bike_tasks):
    ws = Workspace(tmp_path)
    ws.save_domain(bike_domain)
    assert ws.replace_tasks("bike_rental", bike_tasks[:4]) == 4
    return ws


def _stored(ws: Workspace, domain: str = "bike_rental") -> list[str]:
    return [t.model_dump_json() for t in ws.load_tasks(domain)]


def test_tasks_round_trip_in_order(ws_with_tasks, bike_tasks, tmp_path):
    assert _stored(Workspace(tmp_path, create=False)) == [t.model_dump_json() for t in bike_tasks[:4]]


def test_replace_tasks_replaces_the_earlier_ones(ws_with_tasks, bike_tasks):
    assert ws_with_tasks.replace_tasks("bike_rental", bike_tasks[3:]) == 3
    assert [t.id for t in ws_with_tasks.load_tasks("bike_rental")] == [t.id for t in bike_tasks[3:]]
    assert _count(ws_with_tasks, store.tasks_t) == 3
    assert ws_with_tasks.replace_tasks("bike_rental", []) == 0
    assert ws_with_tasks.load_tasks("bike_rental") == []


def _unserializable(tasks):
    bad = tasks[1].model_copy(deep=True)
    bad.chain[0].args["when"] = object()  # model_dump_json cannot write this
    return [tasks[4], bad, tasks[5]], pydantic_core.PydanticSerializationError, "Unable to serialize"


def _duplicate_ids(tasks):  # the insert itself fails, on the unique task id
    return [tasks[4], tasks[5], tasks[5]], sa.exc.IntegrityError, "UNIQUE constraint failed: tasks.task_id"


@pytest.mark.parametrize("make", [_unserializable, _duplicate_ids], ids=["unserializable task", "duplicate id"])
def test_a_failed_replace_tasks_keeps_all_the_old_tasks(ws_with_tasks, bike_tasks, tmp_path, make):
    """The old tasks are deleted first, in the same transaction: a failure after that must undo it."""
    before = _stored(ws_with_tasks)
    new, error, message = make(bike_tasks)
    with pytest.raises(error, match=message):
        ws_with_tasks.replace_tasks("bike_rental", new)
    assert _stored(Workspace(tmp_path, create=False)) == before
    assert _count(ws_with_tasks, store.tasks_t) == 4


def test_replace_tasks_of_an_unknown_domain_is_an_error(ws_with_tasks, bike_tasks):
    with pytest.raises(store.WorkspaceError, match=r"no domain 'nope' .*\(domains: bike_rental\)"):
        ws_with_tasks.replace_tasks("nope", bike_tasks[:1])
    assert _count(ws_with_tasks, store.tasks_t) == 4


def test_replacing_one_domains_tasks_leaves_the_other_domains_alone(ws_with_tasks, bike_domain, bike_tasks):
    other = bike_domain.model_copy(update={"domain": bike_domain.domain.model_copy(update={"name": "bikes_two"})})
    ws_with_tasks.save_domain(other)
    theirs = [t.model_copy(update={"id": t.id.replace("bike_rental", "bikes_two"), "domain": "bikes_two"})
              for t in bike_tasks[:2]]
    ws_with_tasks.replace_tasks("bikes_two", theirs)
    ws_with_tasks.replace_tasks("bike_rental", bike_tasks[5:])
    assert [t.id for t in ws_with_tasks.load_tasks("bikes_two")] == [t.id for t in theirs]
    assert [t.id for t in ws_with_tasks.load_tasks("bike_rental")] == [bike_tasks[5].id]
    assert ws_with_tasks.task_counts() == {
        "bike_rental": {"tasks": 1, "pending": 1, "approved": 0, "rejected": 0},
        "bikes_two": {"tasks": 2, "pending": 2, "approved": 0, "rejected": 0}}


def test_saving_a_domain_again_drops_its_tasks(ws_with_tasks, bike_domain):
    """README: a domain with the same name replaces the stored one, and its tasks."""
    ws_with_tasks.save_domain(bike_domain)
    assert ws_with_tasks.load_tasks("bike_rental") == []
    assert _count(ws_with_tasks, store.tasks_t) == 0


def test_set_review_persists_and_wins_over_the_stored_task_json(ws_with_tasks, bike_tasks, tmp_path):
    first, second = bike_tasks[0].id, bike_tasks[1].id
    ws_with_tasks.set_review(first, "approved", "clear and solvable")
    ws_with_tasks.set_review(second, "rejected", "ambiguous rider")
    # the task JSON still says pending; the review columns are what counts
    with ws_with_tasks.engine.connect() as c:
        raw = c.execute(sa.select(store.tasks_t.c.task_json).where(store.tasks_t.c.task_id == first)).scalar()
    assert '"status":"pending"' in raw.replace(" ", "")
    loaded = {t.id: (t.review.status, t.review.note) for t in Workspace(tmp_path, create=False).load_tasks("bike_rental")}
    assert loaded == {first: ("approved", "clear and solvable"), second: ("rejected", "ambiguous rider"),
                      bike_tasks[2].id: ("pending", ""), bike_tasks[3].id: ("pending", "")}
    assert ws_with_tasks.task_counts()["bike_rental"] == {"tasks": 4, "pending": 2, "approved": 1, "rejected": 1}
    ws_with_tasks.set_review(first, "pending")
    assert ws_with_tasks.load_tasks("bike_rental")[0].review.model_dump() == {"status": "pending", "note": ""}


def test_a_stored_review_comes_from_the_task(tmp_path, bike_domain, bike_tasks):
    ws = Workspace(tmp_path)
    ws.save_domain(bike_domain)
    reviewed = bike_tasks[0].model_copy(deep=True)
    reviewed.review.status, reviewed.review.note = "approved", "kept"
    ws.replace_tasks("bike_rental", [reviewed])
    assert ws.load_tasks("bike_rental")[0].review.model_dump() == {"status": "approved", "note": "kept"}


def test_set_review_refuses_a_bad_status_and_an_unknown_task(ws_with_tasks, bike_tasks):
    with pytest.raises(store.WorkspaceError, match="review status must be pending, approved or rejected, not 'ok'"):
        ws_with_tasks.set_review(bike_tasks[0].id, "ok")
    with pytest.raises(store.WorkspaceError, match=r"no task 'bike_rental-9-99999' in workspace sqlite:///"):
        ws_with_tasks.set_review("bike_rental-9-99999", "approved")
    assert ws_with_tasks.task_counts()["bike_rental"]["pending"] == 4


def test_a_damaged_task_record_is_a_workspace_error_naming_the_domain(ws_with_tasks):
    with ws_with_tasks.engine.begin() as c:
        c.execute(sa.update(store.tasks_t).where(store.tasks_t.c.position == 2).values(task_json="{oops"))
    with pytest.raises(store.WorkspaceError, match=r"the tasks of 'bike_rental' in sqlite:///.* are damaged"):
        ws_with_tasks.load_tasks("bike_rental")


def test_reading_a_workspace_that_does_not_exist_creates_nothing(tmp_path):
    for where in (tmp_path / "typo", tmp_path / "typo.db", f"sqlite:///{tmp_path / 'typo.sqlite'}"):
        with pytest.raises(store.WorkspaceError, match="no workspace at .*typo"):
            Workspace(where, create=False)
    assert list(tmp_path.iterdir()) == []
