"""The page switcher in Debian's Chromium: a page that is left is gone from the screen,
whatever display its own CSS gives it, and the page shown is the one in the URL."""

import pytest

from conftest import make_server, open_page

pytestmark = pytest.mark.browser
PAGES = ("lab", "cost", "runs", "watch", "experiments")


def test_each_page_leaves_the_screen_when_another_is_opened(browser):
    with make_server(frame_rate=30) as server, open_page(browser) as page:
        page.goto(f"{server.url}/#depth=3&width=8&steps=5&page=watch")
        page.wait_for_selector("#page-watch", state="visible")
        for name in PAGES:
            page.click(f"#pages button[data-page='{name}']")
            page.wait_for_selector(f"#page-{name}", state="visible")
            shown = page.evaluate("""() => [...document.querySelectorAll('main[data-page]')]
                .filter((m) => m.getBoundingClientRect().height > 0).map((m) => m.dataset.page)""")
            assert shown == [name], f"after opening {name}, on screen: {shown}"
            assert page.locator(f"#pages button[data-page='{name}']").get_attribute(
                "aria-current") == "page"
