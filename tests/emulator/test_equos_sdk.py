"""The official Equos SDK (equos 3.1.5) against the running emulator: every resource
through create, list (several pages), get, update and delete, documents, a conversation
start/stop. The SDK must parse every answer into its own models.

The SDK's getters quietly fall back to the raw dict when its model cannot parse a body,
and answer None on an unexpected status, so every result is checked with isinstance.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar

import httpx
import pytest
from equos.client.models.create_document_request import CreateDocumentRequest
from equos.client.models.create_document_response import CreateDocumentResponse
from equos.client.models.create_equos_brain_request import CreateEquosBrainRequest
from equos.client.models.create_equos_character_request import CreateEquosCharacterRequest
from equos.client.models.create_equos_conversation_request import CreateEquosConversationRequest
from equos.client.models.create_equos_conversation_request_prompt_template_vars_type_0 import (
    CreateEquosConversationRequestPromptTemplateVarsType0,
)
from equos.client.models.create_equos_conversation_response import CreateEquosConversationResponse
from equos.client.models.create_equos_face_request import CreateEquosFaceRequest
from equos.client.models.create_equos_face_request_identity import CreateEquosFaceRequestIdentity
from equos.client.models.create_equos_token_request import CreateEquosTokenRequest
from equos.client.models.create_equos_token_response import CreateEquosTokenResponse
from equos.client.models.create_equos_voice_request import CreateEquosVoiceRequest
from equos.client.models.create_equos_voice_request_identity import CreateEquosVoiceRequestIdentity
from equos.client.models.create_knowledge_base_request import CreateKnowledgeBaseRequest
from equos.client.models.equos_brain import EquosBrain
from equos.client.models.equos_character import EquosCharacter
from equos.client.models.equos_conversation import EquosConversation
from equos.client.models.equos_conversation_status import EquosConversationStatus
from equos.client.models.equos_conversation_with_character_prompt_template_vars_type_0 import (
    EquosConversationWithCharacterPromptTemplateVarsType0,
)
from equos.client.models.equos_document import EquosDocument
from equos.client.models.equos_face import EquosFace
from equos.client.models.equos_knowledge_base import EquosKnowledgeBase
from equos.client.models.equos_participant_identity import EquosParticipantIdentity
from equos.client.models.equos_voice import EquosVoice
from equos.client.models.health_response import HealthResponse
from equos.client.models.list_equos_brains_response import ListEquosBrainsResponse
from equos.client.models.list_equos_characters_response import ListEquosCharactersResponse
from equos.client.models.list_equos_conversations_response import ListEquosConversationsResponse
from equos.client.models.list_equos_faces_response import ListEquosFacesResponse
from equos.client.models.list_equos_knowledge_bases_response import (
    ListEquosKnowledgeBasesResponse,
)
from equos.client.models.list_equos_voices_response import ListEquosVoicesResponse
from equos.client.models.update_equos_character_request import UpdateEquosCharacterRequest
from equos.equos import EquosClient, EquosOptions

from avatarsync.emulator import EmulatorServer

T = TypeVar("T")
CLIENT = "sdk-test"


def parsed(value: Any, model: type[T]) -> T:
    assert isinstance(value, model), f"SDK did not parse into {model.__name__}: {value!r}"
    return value


@pytest.fixture
def sdk(emulator: EmulatorServer, api_key: str) -> Iterator[EquosClient]:
    client = EquosClient.create(api_key, EquosOptions(endpoint=emulator.url))
    # Surface unexpected statuses as errors instead of a silent None.
    client._client.raise_on_unexpected_status = True
    yield client
    client._client.get_httpx_client().close()  # the SDK never closes its connections


def all_pages(list_call: Any, key: str, take: int = 2) -> list[Any]:
    """Walk a list endpoint page by page, as the SDK sends it (floats)."""
    items: list[Any] = []
    skip = 0
    while True:
        page = list_call(take=float(take), skip=float(skip), client_query=CLIENT)
        batch = getattr(page, key)
        items += batch
        assert page.total >= len(items)
        skip += take
        if skip >= page.total:
            return items


def test_sdk_leaves(sdk: EquosClient) -> None:
    faces = [
        parsed(
            sdk.faces.create(
                CreateEquosFaceRequest(identity=CreateEquosFaceRequestIdentity.TOMMY, client=CLIENT)
            ),
            EquosFace,
        )
        for _ in range(3)
    ]
    assert parsed(sdk.faces.list(client_query=CLIENT), ListEquosFacesResponse).total == 3
    assert [f.id for f in all_pages(sdk.faces.list, "faces")] == [f.id for f in faces]
    assert parsed(sdk.faces.get(faces[0].id), EquosFace).identity.value == "tommy"
    assert parsed(sdk.faces.delete(faces[0].id), EquosFace).id == faces[0].id

    voices = [
        parsed(
            sdk.voices.create(
                CreateEquosVoiceRequest(
                    identity=CreateEquosVoiceRequestIdentity(name),
                    client=CLIENT,
                    instructions="calm",
                )
            ),
            EquosVoice,
        )
        for name in ("Puck", "Kore", "Zephyr")
    ]
    assert parsed(sdk.voices.list(client_query=CLIENT), ListEquosVoicesResponse).total == 3
    assert [v.id for v in all_pages(sdk.voices.list, "voices")] == [v.id for v in voices]
    updated = parsed(
        sdk.voices.update(
            voices[0].id,
            CreateEquosVoiceRequest(
                identity=CreateEquosVoiceRequestIdentity.CHARON, instructions="deep"
            ),
        ),
        EquosVoice,
    )
    assert (updated.identity.value, updated.instructions) == ("Charon", "deep")
    assert updated.updated_at > voices[0].updated_at
    assert parsed(sdk.voices.get(voices[0].id), EquosVoice).instructions == "deep"
    assert parsed(sdk.voices.delete(voices[0].id), EquosVoice).id == voices[0].id

    brains = [
        parsed(
            sdk.brains.create(
                CreateEquosBrainRequest(instructions=f"i{n}", greeting_message="hi", client=CLIENT)
            ),
            EquosBrain,
        )
        for n in range(5)
    ]
    assert parsed(sdk.brains.list(client_query=CLIENT), ListEquosBrainsResponse).total == 5
    assert [b.id for b in all_pages(sdk.brains.list, "brains")] == [b.id for b in brains]
    changed = parsed(
        sdk.brains.update(
            brains[1].id, CreateEquosBrainRequest(instructions="new", greeting_message="hey")
        ),
        EquosBrain,
    )
    assert (changed.instructions, changed.greeting_message, changed.client) == (
        "new",
        "hey",
        CLIENT,
    )
    assert parsed(sdk.brains.get(brains[1].id), EquosBrain).greeting_message == "hey"
    assert parsed(sdk.brains.delete(brains[1].id), EquosBrain).id == brains[1].id


def test_sdk_knowledge_bases_and_documents(sdk: EquosClient) -> None:
    kbs = [
        parsed(
            sdk.knowledge_bases.create(
                CreateKnowledgeBaseRequest(name=f"kb{n}", description="d", client=CLIENT)
            ),
            EquosKnowledgeBase,
        )
        for n in range(3)
    ]
    listed = parsed(sdk.knowledge_bases.list(client_query=CLIENT), ListEquosKnowledgeBasesResponse)
    assert listed.total == 3
    assert [kb.id for kb in all_pages(sdk.knowledge_bases.list, "items")] == [kb.id for kb in kbs]
    added = parsed(
        sdk.knowledge_bases.add_document(
            kbs[0].id,
            CreateDocumentRequest(name="faq.md", description="faq", mime_type="text/markdown"),
        ),
        CreateDocumentResponse,
    )
    assert httpx.put(added.upload_url, content=b"hello").status_code == 200
    indexed = parsed(
        sdk.knowledge_bases.index_document(kbs[0].id, added.document.id), EquosDocument
    )
    assert (indexed.status, indexed.size) == ("indexed", 5)
    kb = parsed(sdk.knowledge_bases.get(kbs[0].id), EquosKnowledgeBase)
    assert [d.id for d in kb.documents] == [added.document.id]
    assert isinstance(kb.documents[0], EquosDocument)
    assert (
        parsed(sdk.knowledge_bases.delete_document(kbs[0].id, added.document.id), EquosDocument).id
        == added.document.id
    )
    assert parsed(sdk.knowledge_bases.delete(kbs[0].id), EquosKnowledgeBase).id == kbs[0].id


def test_sdk_characters_conversations_tokens_health(sdk: EquosClient) -> None:
    face = parsed(
        sdk.faces.create(CreateEquosFaceRequest(identity=CreateEquosFaceRequestIdentity.TOMMY)),
        EquosFace,
    )
    voice = parsed(
        sdk.voices.create(CreateEquosVoiceRequest(identity=CreateEquosVoiceRequestIdentity.PUCK)),
        EquosVoice,
    )
    brain = parsed(
        sdk.brains.create(CreateEquosBrainRequest(instructions="i", greeting_message="g")),
        EquosBrain,
    )
    kb = parsed(
        sdk.knowledge_bases.create(CreateKnowledgeBaseRequest(name="kb", description="d")),
        EquosKnowledgeBase,
    )
    characters = [
        parsed(
            sdk.characters.create(
                CreateEquosCharacterRequest(
                    name=f"c{n}",
                    livekit_identity=f"c{n}",
                    client=CLIENT,
                    face_id=face.id,
                    voice_id=voice.id,
                    brain_id=brain.id,
                    knowledge_base_id=kb.id,
                    search=True,
                )
            ),
            EquosCharacter,
        )
        for n in range(3)
    ]
    first = characters[0]
    assert parsed(first.face, EquosFace).id == face.id
    assert parsed(first.knowledge_base, EquosKnowledgeBase).id == kb.id
    assert parsed(sdk.characters.list(client_query=CLIENT), ListEquosCharactersResponse).total == 3
    paged = all_pages(sdk.characters.list, "characters")
    assert [c.id for c in paged] == [c.id for c in characters]
    assert all(isinstance(c.voice, EquosVoice) for c in paged)
    got = parsed(sdk.characters.get(first.id), EquosCharacter)
    assert parsed(got.brain, EquosBrain).id == brain.id
    updated = parsed(
        sdk.characters.update(first.id, UpdateEquosCharacterRequest(name="renamed", search=False)),
        EquosCharacter,
    )
    assert (updated.name, updated.search, updated.livekit_identity) == ("renamed", False, "c0")

    started = parsed(
        sdk.conversations.start(
            CreateEquosConversationRequest(
                name="session",
                character_id=first.id,
                client=CLIENT,
                max_seconds=120.0,
                consumer=EquosParticipantIdentity(identity="u", name="User"),
                prompt_template_vars=CreateEquosConversationRequestPromptTemplateVarsType0.from_dict(
                    {"customer_name": "Ada"}
                ),
            )
        ),
        CreateEquosConversationResponse,
    )
    conv = started.conversation
    assert conv.status.value == "running"
    assert parsed(conv.character, EquosCharacter).id == first.id
    template_vars = parsed(
        conv.prompt_template_vars, EquosConversationWithCharacterPromptTemplateVarsType0
    )
    assert template_vars.to_dict() == {"customer_name": "Ada"}
    assert isinstance(started.consumer_access_token, str)
    assert parsed(sdk.conversations.get(conv.id), EquosConversation).name == "session"
    listed = parsed(sdk.conversations.list(client_query=CLIENT), ListEquosConversationsResponse)
    assert [c.id for c in listed.conversations] == [conv.id]
    stopped = parsed(sdk.conversations.stop(conv.id), EquosConversation)
    assert stopped.status == EquosConversationStatus.ENDED and stopped.ended_at is not None

    token = parsed(
        sdk.tokens.create(CreateEquosTokenRequest(user="u", character=first.id)),
        CreateEquosTokenResponse,
    )
    assert token.token
    for c in characters:
        assert parsed(sdk.characters.delete(c.id), EquosCharacter).id == c.id

    assert parsed(sdk.health.check(), HealthResponse).status == "ok"
    assert isinstance(sdk.organizations.get_freemium_usage(), float | int)
