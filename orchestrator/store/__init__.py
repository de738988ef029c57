"""The results dataset: where it is, its schemas, the one writer, the one reader; nobody else builds its paths.

    location   --results → (pyarrow filesystem, root): a folder or object storage, credentials never stored
    files      whole files in a location: written all or nothing, read, listed, deleted
    layout     every path: tables, parts, manifests, and the names older versions used
    manifest   a run's committed files: commits and checkpoints, read back (one run or many)
    catalog    which files of the dataset are committed, table by table (what the reader reads)
    parts      immutable parts, written by the driver or by any other process (node agents)
    writer     RunStore: a run's commits, its run row, compaction and cleanup at the end; acks
    reader     Dataset: DuckDB views over the committed files, confined to them
    queries    every question the other layers ask: the only SQL outside the reader
    live       the runs this process writes now (a closed run whose last row failed reads interrupted)
    history_index   history's caches: each run's series figures, read once per change of the run
"""
