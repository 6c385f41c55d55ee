from squidmesh.management.tables import render_table


def test_render_table__pads_columns_to_the_widest_cell_without_trailing_spaces():
    text = render_table(["A", "LONGER"], [("wide cell", None), ("x", "y")])

    assert text.splitlines() == [
        "A          LONGER",
        "wide cell  -",
        "x          y",
    ]


def test_render_table__headers_only():
    assert render_table(["ONE", "TWO"], []) == "ONE  TWO"
