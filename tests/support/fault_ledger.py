"""One fault row's count from three sources: what the client saw, what the gateway's status API says, and what
the chain holds (each request's effect is unique to it: a fresh recipient address).

lost: accepted and not terminal at the end (or no record any more), confirmed without its effect on chain, or
sent on chain while the client holds no record of it (refused or never answered). unknown: accepted, still
`unknown` at the end with nothing on chain, its record kept: the gateway could not tell whether the relayer
took it (the relayer died holding the request) and ends it `failed` once the relayer still does not have it
after `unknownGiveUpSeconds` (600 s by default), longer than a row waits; counted apart, not as lost.
duplicated: a request whose recipient appears in more than one relayer transaction (reverted ones included: a
second send is a second send), or whose effect is on chain more than once.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.support.fault_load import Request
from tests.support.gateway import balance_of, rpc


@dataclass
class ChainMark:
    block: int
    nonces: dict[str, int]  # relayer address (lower case) -> transaction count at `block`


def mark(rpc_url: str, relayers: list[str]) -> ChainMark:
    block = int(rpc(rpc_url, "eth_blockNumber", []), 16)
    return ChainMark(
        block,
        {a.lower(): int(rpc(rpc_url, "eth_getTransactionCount", [a, hex(block)]), 16) for a in relayers},
    )


def relayer_transactions(rpc_url: str, before: ChainMark, after: ChainMark) -> list[dict[str, Any]]:
    """Every transaction the relayers sent in blocks (before.block, after.block]."""
    out = []
    for n in range(before.block + 1, after.block + 1):
        block = rpc(rpc_url, "eth_getBlockByNumber", [hex(n), True])
        out += [tx for tx in block["transactions"] if tx["from"].lower() in before.nonces]
    return out


@dataclass
class Row:
    fault: str
    sent: int
    accepted: int
    confirmed: int
    failed_with_reason: int
    lost: int
    unknown: int  # accepted, `unknown` with its record and nothing on chain: settles after the give-up time
    duplicated: int
    refused: int  # a definite answer without a record (nothing sent)
    unanswered: int  # no definite answer within the client's patience, and nothing on chain
    retried_5xx: int  # 5xx answers the client retried (same key)
    conn_errors: int  # connection errors the client retried (same key)
    relayer_txs: int
    nonce_advance: int
    stray_txs: int  # relayer transactions that are no request's (e.g. a nonce-gap filler)
    settle_seconds: float
    notes: dict[str, Any] = field(default_factory=dict)


def count(
    fault: str,
    requests: list[Request],
    rpc_url: str,
    nft: str,
    token: str,
    before: ChainMark,
    after: ChainMark,
    settle_seconds: float,
) -> Row:
    txs = relayer_transactions(rpc_url, before, after)
    sends: Counter[str] = Counter()
    by_recipient = {r.recipient[2:].lower(): r for r in requests}
    stray = 0
    for tx in txs:
        data = tx["input"].lower()
        hits = [rcpt for rcpt in by_recipient if rcpt in data]
        if not hits:
            stray += 1
        for rcpt in hits:
            sends[rcpt] += 1

    lost: list[str] = []
    duplicated: list[str] = []
    confirmed = failed_with_reason = refused = unanswered = unknown = 0
    reasons: Counter[str] = Counter()
    refusals: Counter[str] = Counter()
    for r in requests:
        rcpt = r.recipient[2:].lower()
        if r.kind == "direct":
            effect = balance_of(rpc_url, nft, r.recipient)
        else:
            effect = balance_of(rpc_url, token, r.recipient) // r.amount
        if sends[rcpt] > 1 or effect > 1:
            duplicated.append(f"{r.kind} {r.key}: {sends[rcpt]} transactions, effect x{effect}")
        status = (r.final or {}).get("status")
        if not r.accepted:
            if effect or sends[rcpt]:
                lost.append(f"{r.kind} {r.key}: on chain without a record ({r.refused or 'unanswered'})")
            elif r.refused:
                refused += 1
                refusals[r.refused] += 1
            else:
                unanswered += 1
            continue
        if not r.terminal and status == "unknown" and not effect and not sends[rcpt]:
            unknown += 1
        elif not r.terminal:
            lost.append(
                f"{r.kind} {r.gid}: {status or 'no record'} at the end ({r.not_found} x 404), "
                f"effect x{effect} on chain"
            )
        elif status == "confirmed":
            if effect == 1:
                confirmed += 1
            else:
                lost.append(f"{r.kind} {r.gid}: confirmed, effect x{effect} on chain")
        else:
            reason = str((r.final or {}).get("statusReason") or "")
            if effect:
                lost.append(f"{r.kind} {r.gid}: {status} but its effect is on chain")
            elif reason:
                failed_with_reason += 1
                reasons[f"{status}: {reason[:80]}"] += 1
            else:
                lost.append(f"{r.kind} {r.gid}: {status} without a reason")
    answers = [a for r in requests for a in r.answers]
    return Row(
        fault=fault,
        sent=len(requests),
        accepted=sum(r.accepted for r in requests),
        confirmed=confirmed,
        failed_with_reason=failed_with_reason,
        lost=len(lost),
        unknown=unknown,
        duplicated=len(duplicated),
        refused=refused,
        unanswered=unanswered,
        retried_5xx=sum(a.startswith("5") for a in answers),
        conn_errors=answers.count("conn"),
        relayer_txs=len(txs),
        nonce_advance=sum(after.nonces[a] - before.nonces[a] for a in before.nonces),
        stray_txs=stray,
        settle_seconds=round(settle_seconds, 1),
        notes={
            "lost": lost[:10],
            "duplicated": duplicated[:10],
            "failed": dict(reasons),
            "refused": dict(refusals),
            "answers": dict(Counter(answers)),
        },
    )


COLUMNS = [
    ("fault", 26),
    ("sent", 5),
    ("accepted", 8),
    ("confirmed", 9),
    ("failed_with_reason", 7),
    ("lost", 5),
    ("unknown", 7),
    ("duplicated", 5),
    ("refused", 7),
    ("unanswered", 10),
    ("retried_5xx", 6),
    ("conn_errors", 6),
    ("relayer_txs", 6),
    ("nonce_advance", 6),
    ("settle_seconds", 6),
]
HEADERS = {
    "failed_with_reason": "failed",
    "duplicated": "dup",
    "retried_5xx": "5xx",
    "conn_errors": "conn",
    "relayer_txs": "txs",
    "nonce_advance": "nonces",
    "settle_seconds": "settle",
}


def table(rows: list[Row]) -> str:
    """A fixed-width text table of the rows (the JSON file holds the notes too)."""
    lines = [" ".join(HEADERS.get(c, c).ljust(w) for c, w in COLUMNS)]
    for row in rows:
        values = asdict(row)
        lines.append(" ".join(str(values[c]).ljust(w) for c, w in COLUMNS))
    return "\n".join(lines)


def write(path: Path, rows: list[Row], meta: dict[str, Any]) -> None:
    path.write_text(json.dumps({**meta, "rows": [asdict(r) for r in rows]}, indent=2))
