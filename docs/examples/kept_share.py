"""How much of each clip's spectrum the sufficient masks keep, per model: an example of
your own analysis for `sigwh report` (docs/analyses.md). Copy it into a folder of yours,
or into the analyses/ folder of a source checkout, and run `sigwh report --analyses DIR`.
"""

from sigwarehouse.report import Section, Table

SQL = """
SELECT model,
       count(*) AS explanations,
       count(sufficient_mask) AS with_mask,
       avg(sufficient_size / n_bins) AS mean_kept_share,
       max(sufficient_size / n_bins) AS max_kept_share
FROM explanations
GROUP BY model
ORDER BY model
"""


def run(con):
    frame = con.sql(SQL).pl()
    section = Section(
        key="kept-share",
        title="How much of the spectrum do sufficient masks keep?",
        intro="Per model: the share of a clip's frequency bins that its sufficient mask "
        "keeps, averaged over the clips that have a mask.",
        tables=[Table("kept_share", "Kept share of the spectrum, per model", frame)],
    )
    if frame.is_empty():
        section.missing = "No explanations yet: run `sigwh ingest --model M` first."
    return section
