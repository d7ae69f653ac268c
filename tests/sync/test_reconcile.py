"""The three-way planner: every case of issue 17 by hand, then random trees by hypothesis."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from homekeep.sync.client.reconcile import ConflictCopy, Side, Version, reconcile
from homekeep.sync.conflicts import conflict_name, is_conflict_copy, original_of

T0 = 1_764_000_000 * 10**9  # 2025-11-24


def f(content: str, t: int = 0, by: str = "") -> Version:
    return Version("file", content, T0 + t * 10**9, by)


D = Version("dir")


def test_an_unchanged_tree_plans_nothing() -> None:
    tree = {"a": f("1"), "d": D, "d/b": f("2")}
    plan = reconcile(tree, dict(tree), dict(tree), me="laptop")
    assert (plan.pull, plan.push, plan.agree, plan.conflicts) == ({}, {}, {}, [])


def test_one_sided_changes_travel_to_the_other_side() -> None:
    base = {"edited": f("1"), "gone": f("2"), "theirs": f("3")}
    local = {"edited": f("1b"), "new": f("4"), "theirs": f("3")}
    remote = {"edited": f("1"), "gone": f("2"), "theirs": f("3b"), "arrived": f("5")}
    plan = reconcile(base, local, remote, me="laptop")
    assert plan.push == {"edited": f("1b"), "new": f("4"), "gone": None}
    assert plan.pull == {"theirs": f("3b"), "arrived": f("5")}
    assert plan.conflicts == []


def test_the_same_change_on_both_sides_is_no_conflict() -> None:
    base = {"a": f("1"), "b": f("2")}
    local = {"a": f("9", 5), "c": f("7")}
    remote = {"a": f("9", 8), "c": f("7")}
    plan = reconcile(base, local, remote, me="laptop")
    assert plan.agree == {"a": f("9", 5), "b": None, "c": f("7")}
    assert (plan.pull, plan.push, plan.conflicts) == ({}, {}, [])


def test_concurrent_edits_keep_both_the_newer_at_the_name() -> None:
    base = {"notes.txt": f("1")}
    plan = reconcile(
        base, {"notes.txt": f("mine", 10)}, {"notes.txt": f("theirs", 20, "desk")}, me="laptop"
    )
    copy = conflict_name("notes.txt", T0 + 10 * 10**9, "laptop")
    assert plan.conflicts == [ConflictCopy("notes.txt", Side.REMOTE, copy)]
    assert copy == "notes.sync-conflict-20251124-160010-laptop.txt"
    final = plan.final({"notes.txt": f("mine", 10)}, {"notes.txt": f("theirs", 20, "desk")})
    assert final == {"notes.txt": f("theirs", 20, "desk"), copy: f("mine", 10)}


def test_when_the_local_edit_is_newer_the_servers_becomes_the_copy() -> None:
    plan = reconcile(
        {"a/b.tar.gz": f("1")},
        {"a/b.tar.gz": f("mine", 30)},
        {"a/b.tar.gz": f("theirs", 20, "desk")},
        me="laptop",
    )
    (c,) = plan.conflicts
    assert c.winner is Side.LOCAL
    assert c.copy == "a/b.tar.sync-conflict-20251124-160020-desk.gz"


def test_an_edit_beats_a_delete_either_way() -> None:
    base = {"x": f("1"), "y": f("2")}
    plan = reconcile(base, {"x": f("1b")}, {"y": f("2b")}, me="laptop")
    assert plan.push == {"x": f("1b")}
    assert plan.pull == {"y": f("2b")}
    assert plan.conflicts == []


def test_no_conflict_copy_of_a_conflict_copy() -> None:
    path = "n.sync-conflict-20251124-160010-laptop.txt"
    assert is_conflict_copy(path)
    assert not is_conflict_copy("n.txt")
    assert original_of(path) == "n.txt"
    assert original_of("d/Makefile.sync-conflict-20251124-160010-desk") == "d/Makefile"
    plan = reconcile({path: f("1")}, {path: f("2", 1)}, {path: f("3", 2)}, me="laptop")
    assert plan.conflicts == [ConflictCopy(path, Side.REMOTE, None)]


def test_a_rename_on_one_side_keeps_the_others_edit_under_the_new_name() -> None:
    base = {"old.txt": f("1")}
    plan = reconcile(base, {"new.txt": f("1")}, {"old.txt": f("1b", 5)}, me="laptop")
    assert plan.rename_remote == [("old.txt", "new.txt")]
    assert plan.final({"new.txt": f("1")}, {"old.txt": f("1b", 5)}) == {"new.txt": f("1b", 5)}
    plan = reconcile(base, {"old.txt": f("1b", 5)}, {"new.txt": f("1")}, me="laptop")
    assert plan.rename_local == [("old.txt", "new.txt")]
    assert plan.push == {"new.txt": f("1b", 5)}
    assert plan.final({"old.txt": f("1b", 5)}, {"new.txt": f("1")}) == {"new.txt": f("1b", 5)}


def test_a_folder_deleted_on_one_side_stays_when_the_other_adds_inside_it() -> None:
    base = {"d": D, "d/a": f("1")}
    local = {"d": D, "d/a": f("1"), "d/new": f("2")}
    plan = reconcile(base, local, {}, me="laptop")
    assert plan.pull == {"d/a": None}
    assert plan.push == {"d": D, "d/new": f("2")}
    plan = reconcile(base, {}, local, me="laptop")
    assert plan.push == {"d/a": None}
    assert plan.pull == {"d": D, "d/new": f("2")}


def test_a_folder_beats_a_file_of_the_same_name() -> None:
    plan = reconcile({}, {"x": D}, {"x": f("1", 0, "desk")}, me="laptop")
    (c,) = plan.conflicts
    assert c.winner is Side.LOCAL
    assert c.copy is not None
    assert c.copy.startswith("x.sync-conflict-")


def test_conflict_names_never_collide_with_existing_files() -> None:
    copy = conflict_name("a.txt", T0, "laptop")
    local = {"a.txt": f("2"), copy: f("x")}
    plan = reconcile({"a.txt": f("1")}, local, {"a.txt": f("3"), copy: f("x")}, me="laptop")
    (c,) = plan.conflicts
    assert c.copy not in (copy, None)


# -- random trees ----------------------------------------------------------------------

NAMES = ["a", "b", "d", "d/a", "d/b", "e", "e/x"]
CONTENTS = ["1", "2", "3", "4"]


def _tree(draw: st.DrawFn) -> dict[str, Version]:
    tree: dict[str, Version] = {}
    for name in NAMES:
        parent = name.rpartition("/")[0]
        if parent and (parent not in tree or tree[parent].kind != "dir"):
            continue
        choice = draw(st.sampled_from(["none", "dir", *CONTENTS]))
        if choice == "dir":
            tree[name] = D
        elif choice != "none":
            tree[name] = f(choice, draw(st.integers(0, 3)))
    return tree


@st.composite
def three_trees(draw: st.DrawFn) -> tuple[dict[str, Version], ...]:
    base = _tree(draw)
    return base, _edit(draw, base), _edit(draw, base)


def _edit(draw: st.DrawFn, base: dict[str, Version]) -> dict[str, Version]:
    """A side's tree: the base with some paths changed, kept consistent (parents are folders)."""
    if draw(st.booleans()):
        return dict(base)
    return _tree(draw)


@settings(max_examples=300, deadline=None)
@given(three_trees())
def test_both_sides_converge_and_no_version_is_lost(
    trees: tuple[dict[str, Version], ...],
) -> None:
    base, local, remote = trees
    plan = reconcile(base, local, remote, me="laptop")
    final = plan.final(local, remote)
    # every parent of a path in the final tree is a folder
    for path in final:
        parent = path.rpartition("/")[0]
        if parent:
            assert parent in final, (path, final)
    # every file version either side made since the base is still somewhere in the tree
    contents = {v.content for v in final.values()}
    for side in (local, remote):
        for path, v in side.items():
            if v.kind == "file" and not v.same(base.get(path)) and not is_conflict_copy(path):
                assert v.content in contents, (path, v, plan)
    # and a second pass over the result plans nothing
    again = reconcile(final, dict(final), dict(final), me="laptop")
    assert (again.pull, again.push, again.conflicts) == ({}, {}, [])
