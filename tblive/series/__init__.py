"""Series: the restart rule (``feed``) and bounded incremental statistics per metric (``stats``)."""
