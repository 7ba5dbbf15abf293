"""The dashboard's charts and tables in a real browser: every overview chart drew the data /admin/usage gives,
a running batch's progress bar moves, and each page is captured at 1280 px and 390 px (`make screenshots`)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from selenium.webdriver.common.by import By

from llmproxy.devtools.stub_responses import Fail, Ok, Slow
from llmproxy.devtools.waiting import wait_for
from tests.browser.conftest import settled
from tests.browser.test_dashboard_keys import sign_in
from tests.support import batching as b
from tests.support import records

# A canvas with any painted pixel: uPlot drew something, not only an empty frame.
PAINTED = """const canvas = document.querySelector(arguments[0] + ' canvas');
if (!canvas) return false;
const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
for (let i = 3; i < pixels.length; i += 4) { if (pixels[i] !== 0) return true; }
return false;"""


def chat(client, secret: str, model: str):
    body = {"model": model, "messages": [{"role": "user", "content": "hello"}]}
    return client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {secret}"})


def test_every_overview_chart_draws_what_admin_usage_reports(
    page, client, admin_headers, make_key, upstream, worker, db, screenshot
):
    secret, _ = make_key(name="charts")
    upstream.script(
        "gpt-3.5-turbo", Ok(prompt_tokens=12, completion_tokens=4), Ok(prompt_tokens=30, completion_tokens=9)
    )
    ids = [chat(client, secret, m).headers["x-request-id"] for m in ("gpt-3.5-turbo", "gpt-3.5-turbo", "mistral-tiny")]
    upstream.script("mistral-large", Fail(400))
    failed = chat(client, secret, "mistral-large")
    assert failed.status_code == 400
    for job_id in [*ids, failed.headers["x-request-id"]]:
        records.recorded_job(db, job_id)
    driver, base = page
    sign_in(driver, base)
    wait_for(lambda: driver.current_url.startswith(base + "/dashboard/overview"), timeout=10, message="the overview")
    wait_for(
        lambda: driver.find_element(By.TAG_NAME, "body").get_attribute("data-overview-drawn"),
        timeout=10,
        message="the charts drawn",
    )

    data = driver.execute_script("return JSON.parse(document.getElementById('overview-data').textContent)")
    since = int(datetime.fromisoformat(data["since"]).timestamp())
    by_model = client.get(f"/admin/usage?group_by=model&since={since}", headers=admin_headers).json["data"]
    by_day = client.get(f"/admin/usage?group_by=day&since={since}", headers=admin_headers).json["data"]
    requests = driver.find_element(By.ID, "chart-requests")
    assert int(requests.get_attribute("data-drawn")) >= 1 and driver.execute_script(PAINTED, "#chart-requests")
    assert float(requests.get_attribute("data-sum")) == sum(r["requests"] for r in by_model) == 3  # per-minute buckets
    spend = driver.find_element(By.ID, "chart-spend")
    assert int(spend.get_attribute("data-drawn")) == len(by_day) and driver.execute_script(PAINTED, "#chart-spend")
    assert abs(Decimal(spend.get_attribute("data-sum")) - sum(Decimal(r["cost_usd"]) for r in by_day)) < Decimal("1e-9")
    tokens = driver.find_elements(By.CSS_SELECTOR, "#bars-tokens li")
    assert [t.text.split(":")[0] for t in tokens] == [r["group"] for r in by_model]
    assert [int(t.text.split(": ")[1].split()[0]) for t in tokens] == [
        r["prompt_tokens"] + r["completion_tokens"] for r in by_model
    ]
    [error] = driver.find_elements(By.CSS_SELECTOR, "#bars-errors li")
    assert error.text.endswith(": 1 failed")
    assert sum(int(li.text.split(": ")[1]) for li in driver.find_elements(By.CSS_SELECTOR, "#bars-latency li")) == 3
    queues = [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#bars-queues li")]
    assert len(queues) == 2 and all("worker" in q for q in queues)
    assert driver.find_element(By.ID, "total-requests").text == "3"
    screenshot("overview")
    driver.get(base + "/dashboard/usage?group_by=key")
    assert len(settled(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#usage-table tr[data-group]"))) == 1
    screenshot("usage")
    driver.get(base + "/dashboard/models")
    settled(driver, lambda d: d.find_element(By.CSS_SELECTOR, 'tr[data-model="gpt-3.5-turbo"]'))
    screenshot("models")


def test_a_running_batchs_progress_bar_moves(page, client, make_key, upstream, worker, db, screenshot):
    secret, _ = make_key(name="progress")
    # Four lines answer at once, four take a few seconds: the bar stops half way, then fills.
    upstream.script("gpt-3.5-turbo", *[Ok()] * 4, *[Slow(6)] * 4)
    created = b.create_batch(client, secret, b.file_of(8))
    assert created.status_code == 200, created.json
    driver, base = page
    sign_in(driver, base)

    def progress() -> float:
        driver.get(base + "/dashboard/work")
        row = f'tr[data-batch-id="{created.json["id"]}"] progress'
        return float(settled(driver, lambda d: d.find_element(By.CSS_SELECTOR, row).get_attribute("value")))

    wait_for(lambda: progress() == 4, timeout=20, interval=0.2, message="the bar half way")
    screenshot("work")
    wait_for(lambda: progress() == 8, timeout=30, interval=0.5, message="the bar full")
