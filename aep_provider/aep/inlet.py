"""The DCS streaming inlet client: batches with per-message results, retries, size guard, rate limit."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

import orjson
import requests

from aep_provider.aep.batch_response import parse_batch_response
from aep_provider.aep.errors import AEPAuthError, AEPConfigError, AEPError, AEPRequestError, AEPUnavailableError
from aep_provider.aep.ims import NoAuth, TokenProvider
from aep_provider.aep.ratelimit import Permit, RateLimiter
from aep_provider.aep.results import MAX_REQUEST_BYTES, BatchResult, MessageResult, Outcome, batch_body_size
from aep_provider.aep.retry import AUTH_STATUSES, Action, Answer, Deadline, RetryDriver, RetryPolicy
from aep_provider.aep.transport import (
    DEFAULT_TIMEOUT,
    build_session,
    exchange,
    identity_headers,
    normalize_base_url,
    safe_url,
)

log = logging.getLogger(__name__)

DEFAULT_INLET_URL = "https://dcs.adobedc.net"
DEFAULT_SANDBOX = "prod"

_ALONE_TOO_BIG = (
    "message is {size:,} bytes: alone it makes a request body over AEP's limit of {limit:,} bytes, so it was "
    "not sent. Shrink the record (AEP recommends under 10 KB) or route it elsewhere."
)


def build_batch_body(messages: Sequence[bytes]) -> bytes:
    """``{"messages":[m1,m2,...]}`` by joining the already-encoded messages (no re-encoding)."""
    if not messages:
        return b'{"messages":[]}'
    # One join writes the body once: the wrapper rides on the first and last message (copies of
    # two messages) instead of copying the whole joined body again to add it.
    parts = list(messages)
    parts[0] = b'{"messages":[' + parts[0]
    parts[-1] = parts[-1] + b"]}"
    return b",".join(parts)


def _check_inlet_id(inlet_id: str | None) -> str:
    """
    The inlet id, stripped; refuse what cannot be one path segment.

    :param inlet_id: the configured id.
    :raises AEPConfigError: empty, or holding a ``/`` (typically the whole inlet URL pasted as the id).
    """
    value = str(inlet_id or "").strip()
    if not value:
        raise AEPConfigError("No streaming inlet id given: set the connection's 'inlet_id' extra.")
    if "/" in value:
        raise AEPConfigError(
            f"Inlet id {value!r} contains '/': set 'inlet_id' to the id alone (the last part of an inlet URL "
            "such as https://dcs.adobedc.net/collection/<inlet id>) and the connection's host to the base URL."
        )
    return value


class _Call:
    """Book-keeping for one public call: its retry driver, counters, what the last answer was."""

    def __init__(self, driver: RetryDriver, result: BatchResult) -> None:
        self.driver = driver
        self.result = result
        self.token: str | None = None
        self.url = ""
        self.last = "no attempt made"
        self.last_status: int | None = None
        self.location: str | None = None
        #: the rate limiter's permit of the last attempt (a 429 entry in its answer shrinks the share).
        self.permit: Permit | None = None


class InletClient:
    """
    Sends messages to one AEP streaming inlet. Thread-safe: several batches may be in flight.

    :param inlet_id: the streaming inlet (connection) id.
    :param inlet_url: DCS base URL (the ``inletUrl`` Flow Service gave, without the path).
    :param auth: token provider (:class:`~aep_provider.aep.ims.IMSTokenProvider`,
        :class:`~aep_provider.aep.ims.StaticToken` or :class:`~aep_provider.aep.ims.NoAuth`).
    :param client_id: sent as ``x-api-key``.
    :param ims_org_id: sent as ``x-gw-ims-org-id`` (``...@AdobeOrg``).
    :param sandbox_name: sent lower-cased as ``x-sandbox-name``.
    :param flow_id: sent as ``x-adobe-flow-id`` when set.
    :param timeout: (connect, read) seconds per request; also capped by the remaining deadline.
    :param verify: TLS verification (True, False or a CA bundle path).
    :param proxy: proxy URL, or None.
    :param retry: deadline and attempt limits of one call.
    :param rate_limiter: requests/messages per second limits; ``RateLimiter(None, None)`` turns them off.
    :param pool_size: pooled connections; size it to the number of threads sending at once.
    """

    def __init__(
        self,
        *,
        inlet_id: str,
        inlet_url: str = DEFAULT_INLET_URL,
        auth: TokenProvider | None = None,
        client_id: str | None = None,
        ims_org_id: str | None = None,
        sandbox_name: str | None = DEFAULT_SANDBOX,
        flow_id: str | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        verify: bool | str = True,
        proxy: str | None = None,
        retry: RetryPolicy | None = None,
        rate_limiter: RateLimiter | None = None,
        pool_size: int = 10,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.inlet_id = _check_inlet_id(inlet_id)
        self.base_url = normalize_base_url(inlet_url, what="Inlet URL", default=DEFAULT_INLET_URL)
        # One path segment, percent-encoded: a '?', '#' or space in an id must not become a query or fragment.
        segment = quote(self.inlet_id, safe="")
        self.batch_url = f"{self.base_url}/collection/batch/{segment}"
        self.single_url = f"{self.base_url}/collection/{segment}"
        self.auth: TokenProvider = auth or NoAuth()
        self.client_id = client_id or None
        self.ims_org_id = ims_org_id or None
        self.sandbox_name = (sandbox_name or DEFAULT_SANDBOX).strip().lower()
        self.flow_id = flow_id or None
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.rate_limiter = rate_limiter if rate_limiter is not None else RateLimiter()
        self._session = session or build_session(pool_size=pool_size, verify=verify, proxy=proxy)
        self._proxy = proxy
        self._clock = clock
        self._sleep = sleep

    def __repr__(self) -> str:
        return (
            f"InletClient(batch_url={self.batch_url!r}, auth={self.auth!r}, ims_org_id={self.ims_org_id!r}, "
            f"sandbox_name={self.sandbox_name!r})"
        )

    @property
    def session(self) -> requests.Session:
        """The pooled HTTP session (shared with the Platform client of the same connection)."""
        return self._session

    def close(self) -> None:
        """Close pooled connections."""
        self._session.close()

    def claim_share(self, share: float, ceiling: float) -> None:
        """
        Use ``share`` of the rate limits from now on, adapting to 429 answers up to ``ceiling``.

        :param share: where to start, in [0, ceiling] (the drain engine claims its partitions' part).
        :param ceiling: the most this client may use, in (0, 1].
        """
        self.rate_limiter.claim(share, ceiling)

    # -- public calls -------------------------------------------------------------------------

    def send_batch(self, messages: Sequence[bytes]) -> BatchResult:
        """
        Send ``messages`` (each one UTF-8 JSON object, already encoded) in one batch request.

        Returns one :class:`MessageResult` per message, by position. Entries AEP answers with
        429/5xx are re-sent alone (accepted ones never are) until the retry budget runs out;
        those still failing then are RETRYABLE. Once AEP has answered for any message nothing
        is raised: a final error after that is returned in ``result.error``, the messages
        without an answer RETRYABLE, so that accepted ones are never sent again.

        :raises AEPConfigError: the body would exceed ``MAX_REQUEST_BYTES``; split the batch.
        :raises AEPAuthError: credentials refused, or 401/403 again after one token renewal,
            before any message got an answer. 401/403 *entries* of a 207 are the same failure
            (the token renewed once, those entries re-sent; refused again, they stay RETRYABLE
            and ``result.error`` is the AEPAuthError), never record rejections.
        :raises AEPRequestError: the whole request was refused (400, 413, 501, other 4xx)
            before any message got an answer.
        :raises AEPUnavailableError: 429/5xx/connection errors/timeouts past the retry budget
            before any message got an answer.
        """
        results: list[MessageResult | None] = [None] * len(messages)
        pending: list[int] = []
        for index, message in enumerate(messages):
            if not isinstance(message, (bytes, bytearray, memoryview)):
                raise AEPConfigError(
                    f"message {index} is {type(message).__name__}, not bytes: encode each message as UTF-8 JSON."
                )
            if batch_body_size(len(message), 1) > MAX_REQUEST_BYTES:
                results[index] = MessageResult(
                    Outcome.REJECTED, 413, _ALONE_TOO_BIG.format(size=len(message), limit=MAX_REQUEST_BYTES)
                )
            else:
                pending.append(index)
        size = batch_body_size(sum(len(messages[i]) for i in pending), len(pending))
        if size > MAX_REQUEST_BYTES:
            raise AEPConfigError(
                f"A batch of {len(pending)} messages makes a {size:,}-byte body, over AEP's "
                f"{MAX_REQUEST_BYTES:,}-byte limit for {self.batch_url}: split it into smaller batches "
                "(see results.batch_body_size)."
            )
        call = self._new_call()
        if not pending:
            return self._finish(results, call)  # nothing to send (every message too big, or none)
        answered = False  # whether any 207 came back (then nothing may be raised away)

        def attempt(deadline: Deadline) -> Answer[Any]:
            nonlocal pending, answered
            body = build_batch_body([bytes(messages[i]) for i in pending])
            answer = self._post_once(self.batch_url, body, len(pending), call, deadline)
            if answer.action is not Action.SUCCESS or answer.value is None:
                return answer
            entries, batch_id = parse_batch_response(self._json(answer.value), len(pending), url=self.batch_url)
            answered = True
            if batch_id:
                call.result.batch_ids.append(batch_id)
            retry_now: list[int] = []
            refused: set[int] = set()
            for i, entry in zip(pending, entries):
                if entry.status in AUTH_STATUSES:
                    # A 401/403 entry is the request's credentials refused, not this record: it
                    # is sent again after the token renewal, and never dead-lettered.
                    entry = MessageResult(Outcome.RETRYABLE, entry.status, entry.message, entry.xaction_id)
                    refused.add(entry.status)  # type: ignore[arg-type]
                elif entry.outcome is Outcome.RETRYABLE and entry.status == 429:
                    call.result.throttled += 1
                    if call.permit is not None:
                        call.permit.throttled()
                if entry.outcome is Outcome.RETRYABLE:
                    retry_now.append(i)
                results[i] = entry
            pending = retry_now
            if not pending:
                return Answer(Action.SUCCESS)
            if refused:
                status = max(refused)
                call.last = f"HTTP 207 with {len(pending)} entries answered {sorted(refused)} (authorization)"
                call.last_status = status
                return Answer(Action.RENEW_TOKEN, status=status, detail=call.last)
            statuses = sorted({r.status for i in pending if (r := results[i]) is not None and r.status is not None})
            call.last = f"{len(pending)} entries answered {statuses}"
            log.warning("%s: %d entries failed retryably; re-sending them", self.batch_url, len(pending))
            return Answer(Action.RETRY_PARTIAL, detail=call.last)

        try:
            final = call.driver.run(attempt, renew=self._renewal(call))
            # Entries still failing retryably when the budget ran out keep their RETRYABLE results.
            if final.action is not Action.RETRY_PARTIAL:
                self._raise_unless_success(final, self.batch_url, call)
        except AEPUnavailableError:
            if not answered:
                raise
            # Some messages already have an answer: report the rest as RETRYABLE, lose nothing.
            for i in pending:
                results[i] = MessageResult(Outcome.RETRYABLE, call.last_status, f"retry budget exhausted: {call.last}")
        except AEPError as exc:
            if not answered:
                raise
            call.result.error = exc
        return self._finish(results, call)

    def send_one(self, message: bytes, *, sync_validation: bool = False) -> BatchResult:
        """
        Send one message to the single-message endpoint; a 400 answer rejects it (not retried).

        :param message: one UTF-8 JSON object, encoded.
        :param sync_validation: ask AEP to validate against the schema (``?syncValidation=true``,
            at most 60 requests/minute per inlet, not in every region: 501).
        :return: a :class:`BatchResult` with one entry.
        """
        if len(message) > MAX_REQUEST_BYTES:
            reason = _ALONE_TOO_BIG.format(size=len(message), limit=MAX_REQUEST_BYTES)
            return BatchResult(results=[MessageResult(Outcome.REJECTED, 413, reason)])
        call = self._new_call()
        params = {"syncValidation": "true"} if sync_validation else None
        body = bytes(message)
        final = call.driver.run(
            lambda deadline: self._post_once(self.single_url, body, 1, call, deadline, params=params),
            renew=self._renewal(call),
        )
        if final.action is Action.DONT_RETRY and final.status == 400:
            # The message itself was refused (failed validation): a rejection, not an error.
            reason = self._request_message(self.single_url, 400, call)
            call.result.results = [MessageResult(Outcome.REJECTED, 400, reason)]
            return self._finish(call.result.results, call)
        self._raise_unless_success(final, self.single_url, call)
        assert final.value is not None  # a success carries its response
        payload = self._json(final.value)
        xaction = payload.get("xactionId") if isinstance(payload, dict) else None
        call.result.results = [MessageResult(Outcome.ACCEPTED, None, None, str(xaction) if xaction else None)]
        return self._finish(call.result.results, call)

    def check(self) -> str:
        """
        Prove reachability and authorisation without ingesting anything.

        Posts an empty batch (``{"messages":[]}``): there is nothing in it to ingest, and a
        207 or a 400 means the inlet exists and accepted the token. 401/403/404 and
        network errors raise.

        :return: a short description of what answered.
        """
        call = self._new_call()
        body = build_batch_body([])
        final = call.driver.run(
            lambda deadline: self._post_once(self.batch_url, body, 0, call, deadline), renew=self._renewal(call)
        )
        if final.action is Action.DONT_RETRY and final.status == 400:
            return f"inlet {self.batch_url} reachable and authorised (HTTP 400 to an empty batch)"
        self._raise_unless_success(final, self.batch_url, call)
        return f"inlet {self.batch_url} reachable and authorised (HTTP {final.status})"

    # -- internals ----------------------------------------------------------------------------

    def _new_call(self) -> _Call:
        return _Call(RetryDriver(self.retry, clock=self._clock, sleep=self._sleep), BatchResult(results=[]))

    def _finish(self, results: list[MessageResult | None] | list[MessageResult], call: _Call) -> BatchResult:
        call.result.results = [r if r is not None else MessageResult(Outcome.RETRYABLE) for r in results]
        call.result.retries = call.driver.budget.retries
        return call.result

    def _renewal(self, call: _Call) -> Callable[[], None] | None:
        """The driver's one token renewal for this call, when the auth mode can renew at all."""
        if not self.auth.renewable:
            return None

        def renew() -> None:
            log.warning("POST %s: %s; renewing the access token and retrying once", call.url, call.last)
            self.auth.invalidate(call.token)

        return renew

    def _headers(self, token: str | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        headers.update(
            identity_headers(
                token, client_id=self.client_id, ims_org_id=self.ims_org_id, sandbox_name=self.sandbox_name
            )
        )
        if self.flow_id:
            headers["x-adobe-flow-id"] = self.flow_id
        return headers

    def _post_once(
        self,
        url: str,
        body: bytes,
        n_messages: int,
        call: _Call,
        deadline: Deadline,
        *,
        params: dict[str, str] | None = None,
    ) -> Answer[requests.Response]:
        """One POST, classified; the driver decides what happens next."""
        # The permit is held until the answer is in: the request counts against the limits
        # until a second after AEP has surely seen it. A 429 shrinks the client's share of them.
        with self.rate_limiter.acquire(n_messages) as permit:
            call.permit = permit
            answer = self._post_permitted(url, body, n_messages, call, deadline, params=params)
            if answer.status == 429:
                permit.throttled()
            return answer

    def _post_permitted(
        self,
        url: str,
        body: bytes,
        n_messages: int,
        call: _Call,
        deadline: Deadline,
        *,
        params: dict[str, str] | None,
    ) -> Answer[requests.Response]:
        call.url = url
        token = call.token = self.auth.get_token(deadline)
        call.result.requests += 1
        call.result.bytes_sent += len(body)
        attempt = call.driver.budget.attempts
        # The request alone is timed (not the token, not the rate limiter's wait): that is AEP's latency.
        sent_at = self._clock()
        try:
            answer = exchange(
                self._session,
                "POST",
                url,
                deadline=deadline,
                timeout=self.timeout,
                headers=self._headers(token),
                data=body,
                params=params,
                secrets=[token, self._proxy],
                what="Inlet URL (the connection's host)",
            )
        finally:
            call.result.request_seconds.append(self._clock() - sent_at)
        if answer.action is Action.SUCCESS:
            log.debug("POST %s: HTTP %s (%d messages, %d bytes)", url, answer.status, n_messages, len(body))
            return answer
        call.last = answer.detail
        call.last_status = answer.status
        response = answer.value
        call.location = (
            safe_url(response.headers["Location"]) if response is not None and "Location" in response.headers else None
        )
        if answer.action is Action.RETRY:
            if answer.status == 429:
                call.result.throttled += 1
            if answer.status is None:
                log.warning("POST %s failed: %s (attempt %d)", url, call.last, attempt)
            else:
                log.warning("POST %s: %s (attempt %d); backing off", url, call.last, attempt)
        return answer

    def _raise_unless_success(self, final: Answer[Any], url: str, call: _Call) -> None:
        """The error a call's last answer stands for, if it is not a success."""
        if final.action is Action.SUCCESS:
            return
        if final.action is Action.RENEW_TOKEN:
            raise AEPAuthError(self._auth_message(url, final.status or 401, call))
        if final.action is Action.DONT_RETRY:
            status = final.status or 0
            raise AEPRequestError(self._request_message(url, status, call), status=status, url=url)
        budget = call.driver.budget
        raise AEPUnavailableError(
            f"{url} kept failing: {budget.attempts} attempt(s) in {budget.deadline.elapsed():.1f}s "
            f"(limits: {self.retry.max_attempts} attempts, {self.retry.deadline_seconds:g}s); last: "
            f"{call.last}. Check that the inlet URL is reachable from this worker; the run can be retried."
        )

    def _auth_message(self, url: str, status: int, call: _Call) -> str:
        mode = getattr(self.auth, "mode", "custom")
        if mode == "none":
            hint = "the inlet requires authentication: set auth 'oauth' with the client id and secret."
        elif mode == "token":
            hint = "the static access token was refused (expired?): paste a fresh one or use auth 'oauth'."
        elif status == 403:
            hint = (
                "a fresh token was refused too: check the IMS org id, sandbox name and the credential's AEP "
                "permissions, and whether an IP allow-list blocks this worker."
            )
        else:
            hint = (
                "a fresh token was refused too: check the IMS org id, sandbox name and the credential's AEP "
                "permissions."
            )
        return f"{url} answered {call.last}: {hint}"

    def _request_message(self, url: str, status: int, call: _Call) -> str:
        hints = {
            400: "the request is malformed; each message must be one JSON object.",
            404: "no such inlet: check the connection's 'inlet_id' extra and the inlet URL.",
            413: "the request body is over AEP's limit; send smaller batches.",
            501: "the feature (e.g. syncValidation) is not supported in this region.",
        }
        hint = hints.get(status, "retrying cannot fix this status.")
        if 300 <= status < 400:
            hint = (
                f"it redirects to {call.location or 'another address'}; redirects are not followed (the token "
                "must not travel elsewhere): set the connection's host to the final inlet URL."
            )
        return f"{url} refused the request with {call.last}: {hint}"

    def _json(self, response: requests.Response) -> Any:
        try:
            return orjson.loads(response.content)
        except ValueError:
            url = safe_url(response.url or "")
            raise AEPRequestError(
                f"{url} answered HTTP {response.status_code} with a body that is not JSON: check the inlet URL.",
                status=response.status_code,
                url=url,
            ) from None
