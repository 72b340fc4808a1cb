"""Equos sessions from presets: render, export, start, stop, smoke.

`presets` turns a ConversationPreset (in a project, or in an exported presets
file) into a `SessionSpec`; `sessions` speaks to `/v3/conversations`;
`smoke` is the post-deploy check that stops what it started on every path.
The facade (`avatarsync.api`) wires them to a project and an environment.
"""
