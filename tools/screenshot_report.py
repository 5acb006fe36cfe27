"""Screenshots of the Snakemake HTML report in headless Chromium, one per category and result, for a person to
look at before calling the report done (a dev tool: needs `pip install playwright` and Debian's chromium).

    python tools/screenshot_report.py results/report.html --out results/report_screens
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:60] or "page"


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report")
    parser.add_argument("--out", default="results/report_screens")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(Path(args.report).resolve().as_uri())
        page.wait_for_timeout(1500)
        page.screenshot(path=out / "00-home.png")
        categories = [t.strip() for t in page.locator("nav a, aside a").all_inner_texts() if t.strip()]
        categories = categories[categories.index("About") + 1:] if "About" in categories else categories
        shots = 1
        for category in categories:
            page.goto(Path(args.report).resolve().as_uri())
            page.wait_for_timeout(800)
            page.get_by_text(category, exact=True).first.click()
            page.wait_for_timeout(500)
            rows = page.locator("tr", has=page.locator("a[iconname=eye]"))
            for i in range(rows.count()):
                name = rows.nth(i).locator("td").first.inner_text().strip()
                rows.nth(i).locator("a[iconname=eye]").click()
                page.wait_for_timeout(1200)
                page.screenshot(path=out / f"{shots:02d}-{slug(category)}-{slug(Path(name).name)}.png")
                shots += 1
        browser.close()
    print(f"{shots} screenshots in {out}")


if __name__ == "__main__":
    main()
