#!/usr/bin/env python3
"""Rebuilds tests/fixtures/ecfr/ and tests/fixtures/csl/consolidated_bulk.json from the six
fixture rules' expected changes (tests/fixtures/federal_register/*.expected.json).

The state the rules leave (their changes applied in (publication date, document number) order)
is rendered as the eCFR renders Supplement No. 4 to Part 744 (DIV9 TYPE="APPENDIX", gpotbl TABLE
of TR/TH/TD, see ../shared/data/ecfr/), and as a CSL bulk JSON ({"results": [...]}).

    python3 scripts/build_list_fixtures.py
"""
import json
import pathlib
from xml.sax.saxutils import escape

ROOT = pathlib.Path(__file__).resolve().parent.parent
FR = ROOT / "tests/fixtures/federal_register"
OUT = ROOT / "tests/fixtures/ecfr"
CODES = {"CHINA, PEOPLE'S REPUBLIC OF": "CN", "INDIA": "IN", "GERMANY": "DE", "RUSSIA": "RU",
         "SWITZERLAND": "CH", "SINGAPORE": "SG"}
NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
           "eleven", "twelve"]
# The rule whose footnote mark (<SU>4</SU>) the eCFR keeps in the License requirement cell.
FOOTNOTED = "2025-00480"
# The entry the "dropped" variant leaves out (added by 2021-04505).
DROPPED = "Riol-Chemie"
EL = "Entity List (EL) - Bureau of Industry and Security"


def state():
    docs = []
    for meta in FR.glob("*.meta.json"):
        number = meta.name.split(".")[0]
        m = json.loads(meta.read_text())
        docs.append((m["publication_date"], number))
    entries = {}
    for _, number in sorted(docs):
        for c in json.loads((FR / f"{number}.expected.json").read_text()):
            key = (c["country"], c["name"])
            if c["action"] == "removed":
                entries.pop(key, None)
            else:
                entries[key] = dict(c, document=number)
    return [entries[k] for k in sorted(entries, key=lambda k: (k[0], k[1].lower()))]


def sentence(text):
    """A sentence ends in one period: "Co., Ltd." is not written "Co., Ltd.."."""
    return text if text.endswith(".") else text + "."


def joined_addresses(addresses):
    if len(addresses) > 1:
        return "; ".join(addresses[:-1]) + "; and " + addresses[-1]
    return addresses[0]


def entity_cell(e):
    text = e["name"]
    aliases = e["aliases"]
    if aliases:
        n = len(aliases)
        word = NUMBERS[n] if n < len(NUMBERS) else str(n)
        listed = "; ".join("\u2014" + a for a in aliases[:-1])
        last = "\u2014" + aliases[-1]
        joined = f"{listed}; and {last}" if n > 1 else last
        text += sentence(f", a.k.a., the following {word} alias{'es' if n > 1 else ''}: {joined}")
        if e["addresses"]:
            text += " " + sentence(joined_addresses(e["addresses"]))
    elif e["addresses"]:
        text += ", " + sentence(joined_addresses(e["addresses"]))
    else:
        text = sentence(text)
    return escape(text)


def render(entries, date):
    rows = []
    heading = None
    for e in entries:
        country = e["country"] if e["country"] != heading else ""
        heading = e["country"]
        lic = escape(e["license_requirement"] or "")
        if e["document"] == FOOTNOTED and lic:
            lic += "<SU>4</SU>"
        rows.append(
            "<TR>"
            f'<TD align="left" class="gpotbl_cell" scope="row">{escape(country)}</TD>'
            f'<TD align="left" class="gpotbl_cell">{entity_cell(e)}</TD>'
            f'<TD align="left" class="gpotbl_cell">{lic}</TD>'
            f'<TD align="left" class="gpotbl_cell">{escape(e["license_policy"] or "")}</TD>'
            f'<TD align="left" class="gpotbl_cell">{escape(e["federal_register_citation"] or "")}</TD>'
            "</TR>")
    head = ('<TR><TH class="gpotbl_colhed" scope="col">Country</TH>'
            '<TH class="gpotbl_colhed" scope="col">Entity</TH>'
            '<TH class="gpotbl_colhed" scope="col">License requirement</TH>'
            '<TH class="gpotbl_colhed" scope="col">License review policy</TH>'
            '<TH class="gpotbl_colhed" scope="col">Federal Register citation</TH></TR>')
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Rebuilt for tests by scripts/build_list_fixtures.py from the six fixture rules of
     tests/fixtures/federal_register/ (their expected changes applied in date order), in the
     eCFR markup of ../shared/data/ecfr/. Not the official text. -->
<DIV5 N="744" TYPE="PART">
<HEAD>PART 744\u2014CONTROL POLICY: END-USER AND END-USE BASED</HEAD>
<DIV9 N="Supplement No. 4 to Part 744" TYPE="APPENDIX">
<HEAD>Supplement No. 4 to Part 744\u2014Entity List
</HEAD>
<P>This Supplement lists certain entities subject to license requirements for specified items under this part 744 of the EAR. License requirements for these entities include exports, reexports, and transfers (in-country) unless otherwise stated.
</P>
<DIV width="100%"><DIV class="gpotbl_div"><TABLE border="1" cellpadding="1" cellspacing="1" class="gpotbl_table" frame="void" width="100%">{head}
{chr(10).join(rows)}
</TABLE></DIV></DIV>
<FTNT><P><SU>4</SU> For this entity, \u201citems subject to the EAR\u201d includes foreign-produced items that are subject to the EAR under \u00a7 734.9(e)(1) of the EAR.</P></FTNT>
<CITA TYPE="N">[As of {date}]
</CITA>
</DIV9>
</DIV5>
"""


def versions(dates):
    return json.dumps({"content_versions": [
        {"date": d, "amendment_date": d, "issue_date": d, "identifier": "Supplement No. 4 to Part 744",
         "name": "Supplement No. 4 to Part 744\u2014Entity List", "part": "744", "substantive": True,
         "removed": False, "subpart": None, "title": "15", "type": "appendix"} for d in dates] + [
        {"date": "2024-09-16", "amendment_date": "2024-09-16", "issue_date": "2024-09-16",
         "identifier": "744.1", "name": "\u00a7 744.1 General provisions.", "part": "744",
         "substantive": True, "removed": False, "subpart": None, "title": "15", "type": "section"}],
        "meta": {"title": "15", "result_count": len(dates) + 1, "issue_date": {"lte": dates[-1]}}},
        indent=1, ensure_ascii=False) + "\n"


def csl(entries):
    results = []
    for i, e in enumerate(entries):
        code = CODES[e["country"]]
        results.append({
            "id": f"fixture-{i + 1}", "source": EL, "name": e["name"], "alt_names": e["aliases"],
            "addresses": [{"address": a, "city": None, "state": None, "postal_code": None, "country": code}
                          for a in e["addresses"]] or [{"address": None, "country": code}],
            "federal_register_notice": e["federal_register_citation"],
            "license_requirement": e["license_requirement"], "license_policy": e["license_policy"],
            "type": "Entity", "programs": [], "start_date": None})
    return json.dumps({"total": len(results), "sources_used": [{"source": EL}], "results": results},
                      indent=1, ensure_ascii=False) + "\n"


def main():
    OUT.mkdir(exist_ok=True)
    entries = state()
    dropped = [e for e in entries if e["name"] != DROPPED]
    assert len(dropped) == len(entries) - 1
    (OUT / "supplement-4-part-744.xml").write_text(render(entries, "2025-01-21"))
    (OUT / "supplement-4-part-744.dropped.xml").write_text(render(dropped, "2025-02-03"))
    (OUT / "versions.json").write_text(versions(["2024-12-02", "2025-01-21"]))
    (OUT / "versions.dropped.json").write_text(versions(["2024-12-02", "2025-01-21", "2025-02-03"]))
    (ROOT / "tests/fixtures/csl/consolidated_bulk.json").write_text(csl(entries))
    print(f"{len(entries)} entries; dropped variant {len(dropped)}")


main()
