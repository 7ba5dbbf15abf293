"""The dashboard in a real browser: sign in, create a key and see it once, revoke it, sign out; a wrong admin key
and a forged cross-site form are refused."""

from __future__ import annotations

from selenium.webdriver.common.by import By

from llmproxy.devtools.waiting import wait_for
from tests.browser.conftest import settled

ADMIN_KEY = "admin-test-key-0123456789"


def sign_in(driver, base: str, key: str = ADMIN_KEY) -> None:
    driver.get(base + "/dashboard/login")
    field = driver.find_element(By.ID, "admin_key")
    field.send_keys(key)
    field.submit()


def test_sign_in_create_a_key_once_revoke_it_and_sign_out(page, admin_headers, client, db, screenshot):
    driver, base = page
    driver.get(base + "/dashboard/keys")
    assert driver.current_url.startswith(base + "/dashboard/login")  # no session: the sign-in page
    screenshot("login")
    field = driver.find_element(By.ID, "admin_key")  # signing in here goes on to the page asked for
    field.send_keys(ADMIN_KEY)
    field.submit()
    wait_for(lambda: driver.current_url == base + "/dashboard/keys", timeout=10, message="the page asked for")
    assert driver.find_element(By.CSS_SELECTOR, 'nav a[aria-current="page"]').text == "Keys"

    driver.find_element(By.ID, "new-name").send_keys("browser-team")
    driver.find_element(By.ID, "new-rpm").send_keys("30")
    driver.find_element(By.ID, "new-budget").send_keys("2.50")
    driver.find_element(By.ID, "new-name").submit()
    secret = settled(driver, lambda d: d.find_element(By.ID, "secret").get_attribute("value"), message="the secret")
    assert secret.startswith("sk-")
    screenshot("key-created")
    [key] = client.get("/admin/keys", headers=admin_headers).json["data"]
    assert (key["name"], key["rpm_limit"], key["budget_usd"], key["active"]) == ("browser-team", 30, "2.5", True)

    driver.get(base + "/dashboard/keys")
    row = settled(driver, lambda d: d.find_element(By.CSS_SELECTOR, f'tr[data-key-id="{key["id"]}"]'))
    assert secret not in driver.page_source  # shown once, never again
    assert "browser-team" in row.text and "active" in row.text
    assert float(row.find_element(By.CSS_SELECTOR, "meter").get_attribute("value")) == 0
    screenshot("keys")
    row.find_element(By.CSS_SELECTOR, "button.danger").click()
    settled(
        driver,
        lambda d: "revoked" in d.find_element(By.CSS_SELECTOR, f'tr[data-key-id="{key["id"]}"]').text,
        message="the key shown revoked",
    )
    assert client.get(f"/admin/keys/{key['id']}", headers=admin_headers).json["active"] is False

    driver.find_element(By.CSS_SELECTOR, ".signout button").click()
    wait_for(lambda: "/dashboard/login" in driver.current_url, timeout=10, message="the sign-in page")
    driver.get(base + "/dashboard/keys")
    assert "/dashboard/login" in driver.current_url


def test_a_wrong_admin_key_is_refused(page, db):
    driver, base = page
    sign_in(driver, base, "sk-definitely-not-it")
    error = settled(driver, lambda d: d.find_element(By.ID, "login-error").text, message="the refusal")
    assert error == "That is not the admin key."
    driver.get(base + "/dashboard/keys")
    assert "/dashboard/login" in driver.current_url


def test_a_forged_form_post_is_refused(page, admin_headers, client, make_key, db):
    driver, base = page
    _, victim = make_key(name="victim")
    sign_in(driver, base)
    wait_for(lambda: driver.current_url == base + "/dashboard/overview", timeout=10, message="the overview")
    # A form another page would plant: the right URL and a session cookie, but not the session's CSRF token.
    driver.execute_script(
        """const form = document.createElement('form');
           form.method = 'post'; form.action = arguments[0];
           document.body.appendChild(form); form.submit();""",
        f"/dashboard/keys/{victim['id']}/revoke",
    )
    settled(driver, lambda d: "403" in d.title, message="the refusal page")
    assert "CSRF" in driver.page_source
    assert client.get(f"/admin/keys/{victim['id']}", headers=admin_headers).json["active"] is True
