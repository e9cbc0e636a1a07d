"""Which HubSpot company a Kleer client belongs to: pure rules, so they are easy to read and test.

In order, the first rule that finds something decides:
1. the client was made by one of our actions: its `foreign-id` names the company;
2. a company carries the client's id in `kleer_id`;
3. a company has the client's organisation number (in the property the portal's client mapping
   reads `orgno` from, `orgno` by default), compared without spaces and dashes;
4. a company has exactly the client's name.
Two companies found by one rule, a company already linked to another client, or two clients
finding the same company: reported with the reason, never guessed.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

from hubspot_api.models import CrmObject


def orgno_key(value: str | None) -> str:
    return re.sub(r"[\s-]", "", value or "")


def orgno_spellings(value: str | None) -> list[str]:
    """How a company may hold the same org number (HubSpot search compares text): as typed,
    digits only, and Swedish style with the dash before the last four digits."""
    key = orgno_key(value)
    if not key:
        return []
    spellings = {value.strip() if value else key, key}
    if len(key) > 4:
        spellings.add(f"{key[:-4]}-{key[-4:]}")
    return sorted(spellings)


@dataclass(frozen=True)
class Candidates:
    """Companies found for a page of clients (the activity searched HubSpot for them)."""

    by_marker: dict[int, CrmObject]  # client id -> the company its foreign-id names
    by_kleer_id: dict[str, list[CrmObject]]
    by_orgno: dict[str, list[CrmObject]]  # normalised orgno -> companies
    by_name: dict[str, list[CrmObject]]  # exact name -> companies


@dataclass(frozen=True)
class Match:
    client_id: int
    company: CrmObject
    rule: str  # "our action", "kleer_id", "org number", "name"


def _describe(companies: list[CrmObject]) -> str:
    return ", ".join(f"{c.id} ({c.prop('name') or 'no name'})" for c in companies)


def match_clients(clients: list[dict], found: Candidates
                  ) -> tuple[list[Match], list[tuple[int, str | None, str]]]:
    """(links to write, unmatched as (client id, name, reason))."""
    matches: list[Match] = []
    problems: list[tuple[int, str | None, str]] = []
    for client in clients:
        cid, name = client["id"], (client.get("name") or "").strip()
        orgno = orgno_key(client.get("orgno"))
        marked = found.by_marker.get(cid)
        rules = [("kleer_id", found.by_kleer_id.get(str(cid), [])),
                 ("org number", found.by_orgno.get(orgno, []) if orgno else []),
                 ("name", found.by_name.get(name, []) if name else [])]
        if marked is not None:
            rules.insert(0, ("our action", [marked]))
        for rule, companies in rules:
            if not companies:
                continue
            if len(companies) > 1:
                problems.append((cid, name or None, f"companies {_describe(companies)} all match "
                                                    f"by {rule}: link one by setting its kleer_id "
                                                    f"to {cid}"))
                break
            company = companies[0]
            linked = company.prop("kleer_id")
            if linked and linked != str(cid):
                problems.append((cid, name or None, f"company {_describe([company])} matches by "
                                                    f"{rule} but is linked to Kleer client "
                                                    f"{linked} already"))
                break
            matches.append(Match(cid, company, rule))
            break
        else:
            what = [f"kleer_id {cid}"] + ([f"org number {client.get('orgno')}"] if orgno else []) + \
                ([f'the name "{name}"'] if name else [])
            problems.append((cid, name or None, "no HubSpot company has " + ", ".join(what)))
    # Two clients on one company: neither is linked.
    by_company: dict[str, list[Match]] = defaultdict(list)
    for match in matches:
        by_company[match.company.id].append(match)
    kept = []
    for group in by_company.values():
        if len(group) == 1:
            kept.append(group[0])
            continue
        ids = ", ".join(str(m.client_id) for m in group)
        for m in group:
            client = next(c for c in clients if c["id"] == m.client_id)
            problems.append((m.client_id, client.get("name"),
                             f"Kleer clients {ids} all match company {_describe([m.company])} "
                             f"(by {m.rule}): link the right one by setting its kleer_id"))
    return kept, problems
