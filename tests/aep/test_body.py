from __future__ import annotations

import json

import pytest

from aep_provider.aep import MAX_REQUEST_BYTES, AEPConfigError, InletClient, NoAuth, batch_body_size, build_batch_body
from tests.aep.support import closed_port


@pytest.mark.parametrize("messages", [[], [b'{"a":1}'], [b'{"a":1}', b'{"b":"\xc3\xa9"}', b"{}"]])
def test_body_is_the_messages_joined_and_its_size_is_predictable(messages):
    body = build_batch_body(messages)
    assert json.loads(body) == {"messages": [json.loads(m) for m in messages]}
    assert len(body) == batch_body_size(sum(map(len, messages)), len(messages))


def test_oversized_body_is_refused_before_any_network():
    # Nothing listens on the port: reaching the network would be a different error.
    client = InletClient(inlet_id="i", inlet_url=f"http://127.0.0.1:{closed_port()}", auth=NoAuth())
    half = b'{"p":"' + b"x" * (MAX_REQUEST_BYTES // 2 - 8) + b'"}'
    assert batch_body_size(2 * len(half), 2) > MAX_REQUEST_BYTES
    with pytest.raises(AEPConfigError, match="split it into smaller batches"):
        client.send_batch([half, half])
