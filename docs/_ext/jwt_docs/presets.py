"""The presets page's tables, written from the presets' own data so that page and code cannot drift apart.

Every rule of every preset becomes a row naming the vendor page it comes from (and the sentence it
rests on), and whether a broken rule refuses the connection or only warns. ``missing_rules`` is the
check ``tests/docs`` runs: a rule the rendered page does not state is a rule nobody reads about.
"""

from __future__ import annotations


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def presets_markdown() -> str:
    from airflow_jwt_provider.connection.presets import PRESETS
    from airflow_jwt_provider.connection.presets.rules import READ_ON, Guaranteed, Severity

    lines = [
        "| preset | fills in | `aud` | vendor page |",
        "|---|---|---|---|",
    ]
    for preset in PRESETS.values():
        fills = ", ".join(f"`{key}`: `{value}`" for key, value in preset.defaults.items()) or "nothing"
        if preset.auth_url_from_host is not None:
            fills += "; `auth_url` from Host (`<instance>/oauth_token.do`)"
        if preset.scope_in_assertion:
            fills += "; the scope goes in the assertion"
        if not preset.subject_defaults_to_issuer:
            fills += "; `sub` only when a subject is set"
        page = f"[{_cell(preset.page.title)}]({preset.page.url})"
        lines.append(f"| `{preset.name}` | {_cell(fills)} | {_cell(preset.audience_rule)} | {page} |")
    lines += ["", f"The rules each preset checks before any request (vendor pages read on {READ_ON}):", ""]
    for preset in PRESETS.values():
        lines += [f"**`{preset.name}`** ({preset.title})", "", "| rule | if broken | source |", "|---|---|---|"]
        for rule in preset.rules:
            if rule.source is None:
                source = "none found: a warning only"
            else:
                quote = f": “{_cell(rule.source.quote)}”" if rule.source.quote else ""
                source = f"[{_cell(rule.source.title)}]({rule.source.url}){quote}"
            if isinstance(rule, Guaranteed):
                verdict = "met by every assertion"
            else:
                verdict = "refused" if rule.severity is Severity.REFUSE else "warning"
            lines.append(f"| {_cell(rule.describe)} | {verdict} | {source} |")
        lines.append("")
    lines += [
        "How to register the key with each vendor (`airflow jwt-bearer export` prints it):",
        "",
        "| preset | what to register |",
        "|---|---|",
    ]
    lines += [f"| `{p.name}` | {_cell(p.register)} |" for p in PRESETS.values() if p.register]
    return "\n".join(lines) + "\n"


def missing_rules(page: str) -> list[str]:
    """The ids of the preset rules ``page`` does not state with their vendor page (the build's page: none)."""
    from airflow_jwt_provider.connection.presets import PRESETS

    missing = []
    for preset in PRESETS.values():
        for rule in preset.rules:
            source = rule.source.url if rule.source is not None else ""
            if _cell(rule.describe) not in page or source not in page:
                missing.append(rule.id)
    return missing
