"""Avatarium agents: conversation tests (`avatarsync test`) and the interactive chat.

Where it sits: the manifests give `AgentProfile`s and `ConversationTest`s
(resolved in `manifests/agents.py`); the provider (`providers/avatarium.py`)
knows the wire; this package runs the tests against an environment's endpoint
(`endpoint`), checks the replies (`expectations`), returns typed results
(`results`) for the renderers in `output/`, smokes Equos presets (through
the sessions' `conversations.smoke`) and drives a terminal chat (`chat`).
Nothing here prints.
"""
