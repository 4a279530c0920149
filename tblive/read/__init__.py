"""Reading: event files on disk -> framed records -> scalar points -> runs of named series.

``crc`` (checksums), ``records`` (TFRecord framing from a saved offset), ``events`` (records ->
scalar points), ``runs`` (run discovery, ``add_scalars`` merging, ``summary.json``), ``tail``
(file-system wake-ups: the only module that imports watchdog).  Nothing here knows of statistics,
rules or alerts; points are handed to series sinks (:mod:`tblive.series.feed`).
"""
