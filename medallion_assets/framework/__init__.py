"""A small table framework: one declaration per table drives its asset, checks, docs and bundle task."""
