"""What the platforms offer that avatarsync validates against: one table each.

The manifests (validation, did-you-mean) and the emulator (what it accepts)
read the same tables, so they cannot disagree. The tables describe what the
SDK we check against (`equos` 3.1.5) lists; the live gallery may differ
between releases (3.1.3 also had a `deborah` face), which is why manifests
only *warn* about an identity missing here and let the server decide.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "AVATARIUM_DEFAULT_URL",
    "AVATARIUM_PROVIDERS",
    "EQUOS_DEFAULT_URL",
    "FACE_IDENTITIES",
    "VOICE_IDENTITIES",
]

EQUOS_DEFAULT_URL: Final = "https://api.equos.ai"
AVATARIUM_DEFAULT_URL: Final = "https://api.avatarium.ai/v1"

# The Equos face gallery (`equos` 3.1.5 lists only this one).
FACE_IDENTITIES: Final[tuple[str, ...]] = ("tommy",)

# The 30 Equos voice identities.
VOICE_IDENTITIES: Final[tuple[str, ...]] = (
    "Achernar", "Achird", "Algenib", "Algieba", "Alnilam", "Aoede", "Autonoe",
    "Callirrhoe", "Charon", "Despina", "Enceladus", "Erinome", "Fenrir", "Gacrux",
    "Iapetus", "Kore", "Laomedeia", "Leda", "Orus", "Puck", "Pulcherrima",
    "Rasalgethi", "Sadachbia", "Sadaltager", "Schedar", "Sulafat", "Umbriel",
    "Vindemiatrix", "Zephyr", "Zubenelgenubi",
)  # fmt: skip

# AI providers an Avatarium conversation can use.
AVATARIUM_PROVIDERS: Final[tuple[str, ...]] = ("groq", "openai", "gemini", "anthropic")
