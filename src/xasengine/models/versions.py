"""Versions of trained-model formats, importable without torch (the Snakefile reads them at parse time)."""

# Bumped whenever a checkpoint of the previous code can no longer be loaded or means something else; the train
# rule's params carry it, so an existing results/ retrains instead of failing on the old weights.
DIFFUSION_MODEL_VERSION = 3  # 2: first-shell node labels (the shell's CN as a condition); 3: auxiliary
                             # invariant head on by default (invariant_weight 1)

# Bumped whenever the sampler's own defaults change what the test shells are; the evaluate rule's params carry
# it, so an existing results/ re-samples (the config alone would not show a changed default).
DIFFUSION_SAMPLING_VERSION = 2  # 2: head_bond and cn_retries on by default

# Diffusion settings read only at sampling: the train rule leaves them out of its params, so changing one
# re-evaluates the test shells and retrains nothing.
DIFFUSION_SAMPLING_SETTINGS = ("guidance", "sample_steps", "eta", "clip_radius", "head_bond", "cn_retries")

# Bumped whenever edge_map.json gains or changes a field its readers need; rule edge_map's params carry it, so an
# existing results/ rebuilds the map instead of handing the report one without the field.
EDGE_MAP_VERSION = 2  # 2: each standard's E0 shift above the foil (shown beside the edge ladder)
