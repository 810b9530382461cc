"""Drives the bridge's /admin session explorer in a real headless Chromium
(Debian's chromium and chromium-driver, through Selenium; nothing is
downloaded). Usage:

  admin_browser.py BASE_URL TOKEN EDIT_ID XSS_ID REVOKE_USER REVOKE_COUNT SHOTS_DIR

Logs in, finds EDIT_ID and edits its fields (string, number, a conflict,
a removal, an extension), checks that XSS_ID's hostile values show as text
and run nothing, revokes REVOKE_USER, pages the list of live sessions, and
logs out. The main flow runs with JavaScript off (the pages must work
without it); the XSS check runs with JavaScript on (so a script that
slipped through would run). Screenshots of the main pages go to SHOTS_DIR.
Prints one line per check and exits non-zero on the first failure."""
import base64
import json
import os
import sys
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import (NoAlertPresentException, StaleElementReferenceException,
                                        WebDriverException)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

base, token, edit_id, xss_id, revoke_user, revoke_count, shots = sys.argv[1:8]
base = base.rstrip("/")
os.makedirs(shots, exist_ok=True)


def check(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)
    print("ok", what)


def browser(javascript):
    for path, pkg in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")]:
        if not os.path.exists(path):
            print(f"FAIL: {path} is missing: apt-get install {pkg}")
            sys.exit(2)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--disable-gpu", "--window-size=1200,900", "--hide-scrollbars"]:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if not javascript:
        options.add_experimental_option(
            "prefs", {"profile.managed_default_content_settings.javascript": 2})
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))


def shot(driver, name):
    """The whole page (not just the window) as PNG, through DevTools."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": 1200, "height": min(max(size["height"], 400), 2400), "scale": 1}
    png = driver.execute_cdp_cmd("Page.captureScreenshot",
                                 {"format": "png", "clip": clip, "captureBeyondViewport": True})
    with open(os.path.join(shots, name), "wb") as f:
        f.write(base64.b64decode(png["data"]))


def submit(driver, button):
    """Clicks a button or link and waits (polling) until the next page replaced this one."""
    page = driver.find_element(By.TAG_NAME, "html")
    button.click()

    def replaced(_):
        try:
            page.tag_name
            return False
        except (StaleElementReferenceException, WebDriverException):
            # Chromium also answers "node does not belong to the document".
            return True

    WebDriverWait(driver, 10).until(replaced)


def csp_clean(driver, where):
    """The page obeyed its own Content-Security-Policy: the style sheet
    applied, and the browser logged no violation."""
    bg = driver.find_element(By.CSS_SELECTOR, "header.top").value_of_css_property("background-color")
    check(bg in ("rgba(36, 41, 47, 1)", "rgb(36, 41, 47)"), f"{where}: the style sheet applies ({bg})")
    blocked = [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]
    check(not blocked, f"{where}: no CSP violation {blocked}")


def css(driver, selector):
    return driver.find_elements(By.CSS_SELECTOR, selector)


def flash(driver):
    found = css(driver, "#flash")
    return found[0].text if found else ""


def field_value(driver, name):
    found = css(driver, f"li[data-field='{name}'] .value")
    return found[0].text if found else None


def login(driver):
    driver.get(base + "/admin/")
    check(driver.current_url.endswith("/admin/login"), "without a login, /admin/ leads to the login form")
    driver.find_element(By.ID, "token").send_keys(token)
    submit(driver, driver.find_element(By.CSS_SELECTOR, "form.card button"))
    check(driver.current_url.endswith("/admin/"), f"logged in ({driver.current_url})")


def open_session(driver, sid):
    driver.get(base + "/admin/")
    driver.find_element(By.ID, "find-id").send_keys(sid)
    submit(driver, driver.find_element(By.CSS_SELECTOR, "form.card button"))
    check(sid in driver.find_element(By.CSS_SELECTOR, "section.session h2").text, f"session {sid} shown")


def set_field(driver, name, kind, value, screenshot=None):
    li = driver.find_element(By.CSS_SELECTOR, f"li[data-field='{name}']")
    li.find_element(By.CSS_SELECTOR, "details.edit summary").click()
    form = li.find_element(By.CSS_SELECTOR, "form.set")
    Select(form.find_element(By.NAME, "type")).select_by_value(kind)
    area = form.find_element(By.NAME, "value")
    area.clear()
    area.send_keys(value)
    if screenshot:
        shot(driver, screenshot)
    submit(driver, form.find_element(By.CSS_SELECTOR, "button"))


def api_patch(sid, fields):
    req = urllib.request.Request(f"{base}/sessions/{sid}", data=json.dumps(fields).encode(),
                                 method="PATCH", headers={"Authorization": f"Bearer {token}",
                                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return r.status


# ---- the main flow, JavaScript off
driver = browser(javascript=False)
try:
    driver.get("data:text/html,<title>off</title><script>document.title='on'</script>")
    check(driver.title == "off", "JavaScript is off in this browser")
    driver.get(base + "/admin/login")
    shot(driver, "login.png")
    driver.find_element(By.ID, "token").send_keys("wrong-token")
    submit(driver, driver.find_element(By.CSS_SELECTOR, "form.card button"))
    check("Wrong credentials" in flash(driver), "a wrong token is refused")
    login(driver)
    shot(driver, "home.png")

    open_session(driver, edit_id)
    prefs = driver.find_element(By.CSS_SELECTOR, "li[data-field='prefs']").text
    check("theme" in prefs and "dark" in prefs and "fr" in prefs, f"nested fields shown as a tree: {prefs!r}")
    check(len(css(driver, "li[data-field='prefs'] details[open]")) >= 1, "the tree is made of <details>")
    lifetime = driver.find_element(By.CSS_SELECTOR, "dd.lifetime").text
    check(lifetime.endswith(" s)"), f"remaining lifetime shown: {lifetime}")
    size = driver.find_element(By.CSS_SELECTOR, "dd.size").text
    check("bytes" in size, f"stored size shown: {size}")
    shot(driver, "session.png")

    set_field(driver, "cn", "string", "Alice Edited", screenshot="edit.png")
    check("Saved field" in flash(driver), f"string edit saved: {flash(driver)}")
    check(field_value(driver, "cn") == "Alice Edited", f"new value shown: {field_value(driver, 'cn')}")

    set_field(driver, "logins", "number", "43")
    check("Saved field" in flash(driver), "number edit saved")
    check("number" in driver.find_element(By.CSS_SELECTOR, "li[data-field='logins'] .type").text,
          "the edited field is a number")

    set_field(driver, "logins", "number", "not a number")
    check("is not a number" in flash(driver), f"a bad number is refused: {flash(driver)}")

    add = driver.find_element(By.CSS_SELECTOR, "details.add")
    add.find_element(By.TAG_NAME, "summary").click()
    add.find_element(By.NAME, "field").send_keys("roles")
    Select(add.find_element(By.NAME, "type")).select_by_value("json")
    add.find_element(By.NAME, "value").send_keys('{"admin": true, "groups": ["ops", "dev"]}')
    submit(driver, add.find_element(By.CSS_SELECTOR, "button"))
    check("Saved field" in flash(driver), "JSON field added")
    check("groups" in (field_value(driver, "roles") or ""), "the JSON value shows as a tree")

    # The page now shows the session at some version; another client
    # changes it; the page's form must then be refused, not overwrite.
    check(api_patch(edit_id, {"theme": "light"}) == 204, "another client changed the session")
    set_field(driver, "cn", "string", "Lost update")
    check("changed by someone else meanwhile" in flash(driver), f"conflict reported: {flash(driver)}")
    check(field_value(driver, "cn") == "Alice Edited", "the conflicting edit wrote nothing")
    shot(driver, "conflict.png")

    li = driver.find_element(By.CSS_SELECTOR, "li[data-field='logins']")
    submit(driver, li.find_element(By.XPATH, ".//button[text()='Delete field']"))
    check("Deleted field" in flash(driver), "field deleted")
    check(field_value(driver, "logins") is None, "the deleted field is gone")

    submit(driver, driver.find_element(By.XPATH, "//button[text()='Extend (touch)']"))
    check("Extended" in flash(driver), "session extended")

    # Every session of a user, then revoke them all.
    driver.get(base + "/admin/")
    driver.find_element(By.ID, "find-user").send_keys(revoke_user)
    submit(driver, driver.find_elements(By.CSS_SELECTOR, "form.card button")[1])
    n = len(css(driver, "section.session"))
    check(n == int(revoke_count), f"{n} sessions of {revoke_user} listed")
    shot(driver, "user.png")
    submit(driver, driver.find_element(By.ID, "revoke"))
    check(f"Revoked {revoke_count} session(s)" in flash(driver), f"revoked: {flash(driver)}")
    check(len(css(driver, "section.session")) == 0 and css(driver, "p.none"), "no session of the user left")

    # The paged list of live sessions, with the whole store's count.
    driver.get(base + "/admin/sessions")
    check(css(driver, "#page-count"), "list page with its count")
    rows = len(css(driver, "table.list tbody tr"))
    check(rows >= 2, f"{rows} sessions on the first page")
    shot(driver, "list.png")
    submit(driver, driver.find_element(By.PARTIAL_LINK_TEXT, "Count every live session"))
    count = driver.find_element(By.ID, "count").text
    check("live session(s)" in count, f"whole-store count: {count}")

    csp_clean(driver, "main flow")
    submit(driver, driver.find_element(By.XPATH, "//button[text()='Log out']"))
    driver.get(base + "/admin/")
    check(driver.current_url.endswith("/admin/login"), "logged out")
finally:
    driver.quit()

# ---- hostile values, JavaScript on (a script that slipped through would run)
driver = browser(javascript=True)
try:
    login(driver)
    open_session(driver, xss_id)
    try:
        text = driver.switch_to.alert.text
        check(False, f"an alert ran: {text}")
    except NoAlertPresentException:
        check(True, "no alert ran")
    check(driver.execute_script("return document.scripts.length") == 0, "the page holds no <script>")
    check(field_value(driver, "note") == "<script>alert(1)</script>", "the script shows as text")
    keys = [e.text for e in css(driver, "li.field .fieldhead .key")]
    check("<img src=x onerror=alert(2)>" in keys, f"a hostile field name shows as text: {keys}")
    check(driver.execute_script("return window.pwned === undefined"), "nothing set by injected code")
    csp_clean(driver, "hostile values")
    shot(driver, "xss.png")
finally:
    driver.quit()

print("PASS")
