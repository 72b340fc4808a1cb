"""Files → desired state: the first direction of the flow.

loader     YAML with the file:line:col of every value (the only yaml import)
project    avatarsync.yaml: manifest globs, environments, keys
models     the pydantic kinds; messages: their errors in people's words
templating ${vars}/${env} substitution and sandboxed jinja2 (the only jinja2 import)
resolve    one environment: substitutions, references → DesiredState
lint       checks across resources of a resolved environment
"""
