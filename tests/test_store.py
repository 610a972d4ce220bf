"""The workspace store: exact round trips, replace-on-save, all-or-nothing writes, where it lives."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

import core.store as store
from core.models import GraphEdge
from core.store import Workspace


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
    with pytest.raises(ZeroDivisionError):
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
