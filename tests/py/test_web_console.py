"""The web console in a real browser: headless Chromium (Debian's chromium and
chromium-driver) driven by selenium against a real daemon with tokens. The page
loads with no console errors beyond the expected 401 of the token prompt, the
token prompt works (a wrong token is asked again, the right one lists the
estimators), a job submitted from the form appears and reaches succeeded, and
its chart is drawn (uPlot's canvas has ink, its legend names the series); the
estimators page shows each one's cost and accepted ranges, ranks them for a
request and reloads the models, and an estimator's page charts its shipped
evaluation with the numbers the API serves.
Screenshots go to $BUILD/screenshots/ for a person to look at."""
import json
import os
import pathlib
import shutil
import time

import pytest

from daemon_util import BUILD, fresh_daemon  # noqa: F401

selenium = pytest.importorskip("selenium", reason="python3-selenium is installed by make deps")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

SHOTS = BUILD / "screenshots"


@pytest.fixture
def browser():
    chromium = shutil.which("chromium")
    driver_bin = shutil.which("chromedriver")
    if not chromium or not driver_bin:
        pytest.skip("chromium and chromium-driver are installed by make deps")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1280,1000", "--no-first-run", "--disable-extensions"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    from selenium.webdriver.chrome.service import Service
    service = Service(executable_path=driver_bin)
    d = webdriver.Chrome(options=opts, service=service)
    d.set_page_load_timeout(30)
    yield d
    d.quit()


def console_errors(driver):
    """Browser console entries at SEVERE, without the 401 answers the token
    prompt is built on (Chromium logs every non-2xx fetch as an error)."""
    out = []
    for e in driver.get_log("browser"):
        if e["level"] != "SEVERE":
            continue
        if "status of 401" in e["message"]:
            continue
        out.append(e["message"])
    return out


def shot(driver, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / (name + ".png")
    driver.save_screenshot(str(path))
    return path


def full_shot(driver, name):
    """A screenshot of the whole page (the window made as tall as the page)."""
    size = driver.get_window_size()
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(size["width"], max(size["height"], height + 140))
    time.sleep(0.3)
    path = shot(driver, name)
    driver.set_window_size(size["width"], size["height"])
    return path


def answer_token(driver, token):
    wait = WebDriverWait(driver, 15)
    wait.until(lambda d: d.execute_script("return document.getElementById('token-dialog').open"))
    box = driver.find_element(By.ID, "token-input")
    box.clear()
    box.send_keys(token)
    driver.find_element(By.ID, "token-save").click()


def canvas_ink(driver, css):
    """Fraction of pixels of the first canvas under css that are not background."""
    return driver.execute_script("""
        const c = document.querySelector(arguments[0]);
        if (!c) return -1;
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let ink = 0;
        for (let i = 0; i < d.length; i += 4)
            if (d[i + 3] > 0 && (d[i] < 240 || d[i + 1] < 240 || d[i + 2] < 240)) ink++;
        return ink / (c.width * c.height);""", css)


def test_console_token_submit_and_plot(fresh_daemon, tmp_path, browser):
    tokens = tmp_path / "tokens"
    tokens.write_text("console-secret\n")
    d = fresh_daemon(["--tokens-file", str(tokens), "--workers", "1"]).start()
    base = "http://127.0.0.1:%d" % d.port
    wait = WebDriverWait(browser, 30)

    # the page itself is public (it holds no data); the API behind it is not
    browser.get(base + "/")
    assert browser.title == "sbida console"
    answer_token(browser, "wrong-token")
    # the refused token brings the prompt back, saying so
    wait.until(lambda b: b.execute_script("return document.getElementById('token-dialog').open"))
    wait.until(EC.text_to_be_present_in_element((By.ID, "token-reason"), "refused"))
    shot(browser, "01-token-prompt")
    answer_token(browser, "console-secret")
    table = wait.until(EC.presence_of_element_located((By.ID, "estimators")))
    names = [a.text for a in table.find_elements(By.CSS_SELECTOR, "td:first-child a")]
    served = [e["name"] for e in d.get("/v1/estimators", headers={"Authorization": "Bearer console-secret"})
              .json()["items"]]
    assert names == served and "l96-sakov-etkf" in names
    shot(browser, "02-estimators")

    # submit a window from the form: a Lorenz96 state observed at every node
    browser.get(base + "/#/submit/l96-sakov-etkf")
    area = wait.until(EC.presence_of_element_located((By.ID, "request")))
    template = json.loads(area.get_attribute("value"))
    assert template["estimator"] == "l96-sakov-etkf" and len(template["observations"][0]) == 40
    obs = [[(2.5 if (i + w) % 5 == 0 else 0.3) for i in range(40)] for w in range(5)]
    req = dict(template, observations=obs, time_index=4, n_samples=48, seed=11)
    browser.execute_script("document.getElementById('request').value = arguments[0]", json.dumps(req))
    browser.find_element(By.ID, "submit").click()
    wait.until(lambda b: "#/jobs/" in b.current_url)
    job_id = browser.current_url.rsplit("/", 1)[1]
    wait.until(EC.text_to_be_present_in_element((By.ID, "job-state"), "succeeded"))
    # the job exists in the API with what the form sent
    j = d.get("/v1/assimilations/%s?include=request" % job_id,
              headers={"Authorization": "Bearer console-secret"}).json()
    assert j["state"] == "succeeded" and j["request"]["observations"][-1] == obs[-1]

    # the chart: uPlot drew lines (ink on its canvas) and its legend names the mean,
    # the band and the observations
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".uplot canvas")))
    time.sleep(0.3)
    assert canvas_ink(browser, ".uplot canvas") > 0.01
    legend = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".u-legend .u-label")]
    assert "posterior mean" in legend and "observations (last time)" in legend
    assert any(t.startswith("q") for t in legend), legend
    # the drawn mean is the job's mean (uPlot keeps the data it plotted)
    series = browser.execute_script(
        "const u = window.sbida.charts[0]; return u.series.map((s, i) => [s.label, u.data[i]]);")
    drawn = dict((label, data) for label, data in series)
    assert drawn["posterior mean"] == pytest.approx(j["result"]["mean"], rel=1e-6)
    diag = json.loads(browser.find_element(By.ID, "diagnostics").text)
    assert "mean" not in diag  # the diagnostics are what is not plotted
    shot(browser, "03-job")

    # the job list shows it, with its state, and updates without reload
    browser.get(base + "/#/jobs")
    try:
        row = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "tr[data-id='%s']" % job_id)))
    except Exception:
        shot(browser, "99-failure")
        print(browser.find_element(By.ID, "view").text, browser.get_log("browser"))
        raise
    assert "succeeded" in row.text
    shot(browser, "04-jobs")
    stamp = browser.find_element(By.ID, "jobs-updated").text
    wait.until(lambda b: b.find_element(By.ID, "jobs-updated").text != stamp)

    errors = console_errors(browser)
    assert not errors, errors


def test_console_draws_2d_fields(fresh_daemon, browser):
    # a Kolmogorov-flow job (state 2 x 32 x 32): the job page shows heatmaps of
    # the mean, the std and one sample per velocity channel, each with structure
    d = fresh_daemon(["--workers", "1"]).start()
    body = {"estimator": "kolmogorov-etkf", "time_index": 0,
            "observations": [[0.4 * ((i * 7) % 5 - 2) for i in range(128)]],
            "operator": {"type": "coarsen", "factor": 4}, "noise_std": 0.1, "n_samples": 16, "seed": 5}
    job = d.post("/v1/assimilations", body).json()
    assert d.wait_state(job["id"], timeout=120)["state"] == "succeeded"
    browser.get("http://127.0.0.1:%d/#/jobs/%s" % (d.port, job["id"]))
    wait = WebDriverWait(browser, 60)
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "canvas[data-kind=heatmap]")) == 6)
    shot(browser, "05-job-2d")
    captions = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".heatmaps figcaption")]
    assert [c.split(" [")[0] for c in captions] == [
        "mean, channel 0", "std, channel 0", "sample 0, channel 0",
        "mean, channel 1", "std, channel 1", "sample 0, channel 1"]
    for i in range(6):
        distinct = browser.execute_script("""
            const c = document.querySelectorAll('canvas[data-kind=heatmap]')[arguments[0]];
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            const seen = new Set();
            for (let k = 0; k < d.length; k += 4) seen.add(d[k] + ',' + d[k + 1] + ',' + d[k + 2]);
            return [c.width, c.height, seen.size];""", i)
        assert distinct[:2] == [32, 32] and distinct[2] > 20, (i, distinct)
    assert not console_errors(browser), console_errors(browser)


def test_console_lists_what_the_registry_serves_after_a_reload(fresh_daemon, browser):
    # the estimators page is the registry: a model added and reloaded shows up on the
    # next visit (no cache in the page), with the version it serves
    d = fresh_daemon().start()
    base = "http://127.0.0.1:%d" % d.port
    wait = WebDriverWait(browser, 30)
    browser.get(base + "/#/estimators")
    table = wait.until(EC.presence_of_element_located((By.ID, "estimators")))
    before = [a.text for a in table.find_elements(By.CSS_SELECTOR, "td:first-child a")]
    assert "tiny-npe" not in before and "l96-sakov-etkf" in before
    src = pathlib.Path(__file__).resolve().parents[1] / "data" / "golden" / "tiny-npe.safetensors"
    shutil.copyfile(src, d.models / "tiny-npe.safetensors")
    rep = d.post("/v1/estimators:reload").json()
    assert [a["name"] for a in rep["added"]] == ["tiny-npe"], rep
    browser.get(base + "/#/jobs")
    wait.until(EC.presence_of_element_located((By.ID, "jobs")))
    browser.get(base + "/#/estimators")
    wait.until(lambda b: "tiny-npe" in [a.text for a in b.find_elements(By.CSS_SELECTOR, "#estimators td:first-child a")])
    after = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#estimators td:first-child a")]
    assert after == [e["name"] for e in d.get("/v1/estimators").json()["items"]]
    browser.get(base + "/#/estimators/tiny-npe")
    wait.until(EC.text_to_be_present_in_element((By.ID, "view"), rep["added"][0]["digest"]))
    shot(browser, "06-estimator-reloaded")
    assert not console_errors(browser), console_errors(browser)


def truth_run(steps, seed=5):
    """[steps, 40] Lorenz96 states one observation interval apart (the client example's)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "cycle_example", pathlib.Path(__file__).resolve().parents[2] / "clients" / "python" / "examples" / "cycle.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.truth_run("l96-sakov", 40, steps, seed)


def test_console_streams(fresh_daemon, tmp_path, browser):
    # a cycled ETKF stream made through the API (behind tokens), seen in the console:
    # the list shows it and updates without reload, its page shows the config, a chart
    # of the spread and the observation-space RMSE per cycle equal to what the API
    # says, links to the cycles' jobs, and deletes it
    import numpy as np
    tokens = tmp_path / "tokens"
    tokens.write_text("stream-secret\n")
    d = fresh_daemon(["--tokens-file", str(tokens), "--workers", "1"]).start()
    auth = {"Authorization": "Bearer stream-secret"}
    base = "http://127.0.0.1:%d" % d.port
    cfg = {"estimator": "l96-sakov-etkf", "operator": {"type": "stations", "indices": list(range(0, 40, 2))},
           "noise_std": 1.0, "n_samples": 40, "seed": 3, "params": {"inflation": 1.05}}
    assert d.post("/v1/streams", cfg).status == 401
    r = d.post("/v1/streams", cfg, headers=auth)
    assert r.status == 201, r.data[:300]
    sid = r.json()["id"]
    # a Lorenz96 truth (on the attractor) observed at every second node with noise 1
    T = 30
    x = truth_run(T + 1)
    rng = np.random.default_rng(6)
    rows = {}
    for t in range(T):
        row = (x[t][::2] + rng.standard_normal(20)).round(4).tolist()
        if t == 3:
            row[1] = row[5] = None  # missing values are left out
        rows[t] = None if t == 7 else row  # one cycle without observations: no RMSE
        c = d.post("/v1/streams/%s/cycles?wait=30" % sid, {"time_index": t, "observations": [rows[t]]}, headers=auth)
        assert c.status == 200 and c.json()["state"] == "succeeded", c.data[:300]
    api = d.get("/v1/streams/%s/cycles?page_size=100&arrays=false" % sid, headers=auth).json()["items"][::-1]
    assert [c["time_index"] for c in api] == list(range(T))

    wait = WebDriverWait(browser, 30)
    browser.get(base + "/#/streams")
    answer_token(browser, "stream-secret")
    row = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#streams tr[data-id='%s']" % sid)))
    assert "l96-sakov-etkf" in row.text and "t = %d" % (T - 1) in row.text and "succeeded" in row.text
    stamp = browser.find_element(By.ID, "streams-updated").text
    wait.until(lambda b: b.find_element(By.ID, "streams-updated").text != stamp)
    # a new stream shows up without a reload
    sid2 = d.post("/v1/streams", dict(cfg, seed=4), headers=auth).json()["id"]
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#streams tr[data-id='%s']" % sid2)))
    shot(browser, "07-streams")
    # pages of 50, newest first: with 49 more the first stream is on the second page
    for k in range(49):
        assert d.post("/v1/streams", dict(cfg, seed=10 + k), headers=auth).status == 201
    browser.get(base + "/#/streams")
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#streams tr[data-id]")) == 50)
    assert not browser.find_elements(By.CSS_SELECTOR, "#streams tr[data-id='%s']" % sid)
    browser.find_element(By.XPATH, "//button[text()='next page']").click()
    row = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#streams tr[data-id='%s']" % sid)))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#streams tr[data-id]")) == 1

    row = browser.find_element(By.CSS_SELECTOR, "#streams tr[data-id='%s']" % sid)
    row.find_element(By.CSS_SELECTOR, "td:first-child a").click()
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#stream-chart .uplot canvas")))
    config = browser.find_element(By.ID, "stream-config").text
    for want in ("l96-sakov-etkf", '"stations"', "40", '"inflation":1.05'):
        assert want in config, (want, config)
    note = browser.find_element(By.ID, "rmse-note").text
    assert "no truth" in note and "observations each cycle assimilated" in note
    time.sleep(0.3)
    assert canvas_ink(browser, "#stream-chart .uplot canvas") > 0.005
    legend = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#stream-chart .u-legend .u-label")]
    assert legend == ["time index", "spread (mean analysis std)", "RMSE vs. this cycle's observations",
                      "observation noise σ"], legend
    # what the chart drew is what the API says, cycle by cycle (no RMSE where no observations)
    drawn = browser.execute_script(
        "const u = window.sbida.charts[0]; return u.series.map((s, i) => [s.label, u.data[i]]);")
    drawn = dict((label, data) for label, data in drawn)
    assert drawn["time index"] == list(range(T))
    assert drawn["spread (mean analysis std)"] == pytest.approx([c["spread"] for c in api], rel=1e-9)
    rmse = drawn["RMSE vs. this cycle's observations"]
    assert rmse[7] is None and all(v is not None for i, v in enumerate(rmse) if i != 7)
    assert [v for v in rmse if v is not None] == pytest.approx(
        [c["obs_rmse"] for c in api if c["obs_rmse"] is not None], rel=1e-9)
    # the numbers are the stored analyses': RMSE of H(mean) against the row (its
    # observed values), and the mean std, for two cycles
    for t in (3, 20):
        j = d.get("/v1/assimilations/%s" % api[t]["job"], headers=auth).json()
        hx = np.array(j["result"]["mean"])[::2]
        y = np.array([np.nan if v is None else v for v in rows[t]])
        keep = ~np.isnan(y)
        assert rmse[t] == pytest.approx(float(np.sqrt(np.mean((hx[keep] - y[keep]) ** 2))), rel=1e-6)
        assert drawn["spread (mean analysis std)"][t] == pytest.approx(float(np.mean(j["result"]["std"])), rel=1e-6)
    # the cycles table links each cycle to its job
    cells = browser.find_elements(By.CSS_SELECTOR, "#cycles tr[data-t] td:nth-child(3) a")
    assert [a.get_attribute("href").rsplit("/", 1)[1] for a in cells] == [c["job"][:32] for c in api[::-1]]
    full_shot(browser, "08-stream")
    # a new cycle appears without a reload
    d.post("/v1/streams/%s/cycles?wait=30" % sid, {"time_index": T, "observations": [x[T][::2].round(4).tolist()]},
           headers=auth)
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#cycles tr[data-t='%d']" % T)))
    wait.until(lambda b: b.execute_script("return window.sbida.charts[0].data[0].length") == T + 1)
    # from a cycle to its job page
    browser.find_element(By.CSS_SELECTOR, "#cycles tr[data-t='11'] td:nth-child(3) a").click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "job-state"), "succeeded"))
    assert browser.current_url.endswith("#/jobs/" + api[11]["job"])
    # delete (after confirming): back to the list, gone from the API, its jobs stay
    browser.get(base + "/#/streams/" + sid)
    wait.until(EC.element_to_be_clickable((By.ID, "delete-stream"))).click()
    wait.until(EC.alert_is_present()).accept()
    wait.until(lambda b: b.current_url.endswith("#/streams"))
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#streams tr[data-id='%s']" % sid2)))
    assert not browser.find_elements(By.CSS_SELECTOR, "#streams tr[data-id='%s']" % sid)
    assert d.get("/v1/streams/" + sid, headers=auth).status == 404
    assert d.get("/v1/assimilations/" + api[0]["job"], headers=auth).status == 200
    errors = console_errors(browser)
    assert not errors, errors


def fmt(x):
    """The console's number format (app.js fmt) for the values compared here."""
    if x is None:
        return "–"
    if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5):
        m, e = ("%.2e" % x).split("e")
        return "%se%s%d" % (m, "-" if int(e) < 0 else "+", abs(int(e)))
    return repr(float(round(x, 3))).rstrip("0").rstrip(".") if round(x, 3) != int(round(x, 3)) else str(int(round(x, 3)))


def test_console_estimators_cost_evaluation_choice_and_reload(fresh_daemon, tmp_path, browser):
    # shipped models with their evaluations (the composed score and the local score) and a
    # tiny golden model, behind a token: the list shows the cost of one request as the
    # evaluation measured it (with threads and settings) and the ranges a request may ask
    # for; an estimator's page draws its evaluation (RMSE/CRPS bars next to the baselines,
    # the calibration curve per estimator) from the API's numbers; the ranking form shows
    # what GET /v1/estimators?operator=... ranks; the reload button reports what changed
    root = pathlib.Path(__file__).resolve().parents[2]
    golden = root / "tests" / "data" / "golden"
    tokens = tmp_path / "tokens"
    tokens.write_text("est-secret\n")
    d = fresh_daemon(["--tokens-file", str(tokens), "--workers", "1"])
    for stem in ("l96-sakov-w10-composed-score", "l96-sakov-n32-k3-local-score"):
        shutil.copyfile(root / "models" / (stem + ".safetensors"), d.models / (stem + ".safetensors"))
        shutil.copytree(root / "models" / "eval" / stem, d.models / "eval" / stem)
    # an evaluation written before costs were recorded (as the composed model's were until
    # session 7): its copy here loses seconds_per_request, and the console must say so
    for f in (d.models / "eval" / "l96-sakov-w10-composed-score").glob("*/l96-sakov-w10-composed-score.json"):
        ev = json.loads(f.read_text())
        ev.pop("seconds_per_request", None)
        f.write_text(json.dumps(ev))
    shutil.copyfile(golden / "tiny-composed-score.safetensors", d.models / "tiny.safetensors")
    # trained for the identity operator only: a near miss for the ranking below
    shutil.copyfile(root / "models" / "l96-sakov-w10-npe.safetensors", d.models / "l96-sakov-w10-npe.safetensors")
    d.start()
    auth = {"Authorization": "Bearer est-secret"}
    api = {e["name"]: e for e in d.get("/v1/estimators", headers=auth).json()["items"]}
    base = "http://127.0.0.1:%d" % d.port
    wait = WebDriverWait(browser, 30)

    browser.get(base + "/#/estimators")
    answer_token(browser, "est-secret")
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#estimators tr[data-name]")))
    heads = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#estimators tr:first-child th")]
    assert "cost per request" in heads, heads
    col = heads.index("cost per request") + 1

    def cost_cell(name):
        return browser.find_element(By.CSS_SELECTOR, "#estimators tr[data-name='%s'] td:nth-child(%d)" % (name, col))

    # the local score: one cost per setup, equal to its own results' seconds_per_request
    local = api["l96-sakov-n32-k3-local-score"]
    want = {s["setup"]: s["results"][local["name"]] for s in local["evaluation"]["setups"]}
    shown = cost_cell(local["name"]).find_elements(By.CSS_SELECTOR, ".cost")
    assert sorted(c.get_attribute("data-setup") for c in shown) == sorted(want)
    for c in shown:
        r = want[c.get_attribute("data-setup")]
        assert float(c.get_attribute("data-seconds")) == pytest.approx(r["seconds_per_request"], rel=1e-12)
        assert c.text.startswith(fmt(r["seconds_per_request"]) + " s")
        # the cost is one request on one thread, with the evaluation running `threads` at
        # once; the sampler settings in effect are shown where the result recorded them
        assert "one thread, %d requests at once" % r["threads"] in c.text, c.text
        if r.get("settings"):
            assert all('"%s":' % k in c.text for k in r["settings"]), (c.text, r["settings"])
        else:
            settings = json.dumps(r["params"], separators=(",", ":")) if r["params"] else "defaults"
            assert settings in c.text, c.text
    # the composed model's evaluation (stripped above) has no cost: said, not invented
    comp = api["l96-sakov-w10-composed-score"]
    assert all(s["results"][comp["name"]]["seconds_per_request"] is None for s in comp["evaluation"]["setups"])
    assert cost_cell(comp["name"]).text.startswith("not measured")
    # the tuned LETKF's requests were timed two at a time in those setups: the cell says so
    letkf = [c.text for c in cost_cell("l96-sakov-letkf").find_elements(By.CSS_SELECTOR, ".cost")]
    assert letkf and all("2 requests at once" in t and '"radius"' in t for t in letkf), letkf
    assert cost_cell("tiny").text == "no evaluation"
    # accepted ranges: the local score takes any state size and window in its ranges
    row = browser.find_element(By.CSS_SELECTOR, "#estimators tr[data-name='%s']" % local["name"])
    cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
    sr, wr = local["state_dim_range"], local["window_range"]
    assert sr["min"] < sr["max"] and wr["min"] < wr["max"]
    assert "N = %d–%d" % (sr["min"], sr["max"]) in cells[heads.index("state")]
    assert cells[heads.index("window")].startswith("%d–%d" % (wr["min"], wr["max"]))
    full_shot(browser, "09-estimators-cost")

    # the composed model's page: two charts per shipped setup, drawing the API's numbers
    browser.get(base + "/#/estimators/" + comp["name"])
    setups = comp["evaluation"]["setups"]
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, ".setup-charts .uplot")) == 2 * len(setups))
    time.sleep(0.3)
    drawn = browser.execute_script("""return window.sbida.charts.map((u) => ({kind: u.sbidaKind,
        title: u.root.querySelector('.u-title').textContent, labels: u.series.map((s) => s.label), data: u.data}));""")
    assert [c["kind"] for c in drawn] == ["metrics", "calibration"] * len(setups)
    for k, s in enumerate(setups):
        names = list(s["results"])
        assert len(names) == 4 and comp["name"] in names and "l96-sakov-letkf" in names  # next to the baselines
        bars, cal = drawn[2 * k], drawn[2 * k + 1]
        assert bars["title"].startswith(s["setup"]) and cal["title"].startswith(s["setup"])
        assert bars["labels"] == ["estimator", "RMSE", "CRPS"] and bars["data"][0] == list(range(4))
        assert bars["data"][1] == pytest.approx([s["results"][n]["rmse"] for n in names], rel=1e-12)
        assert bars["data"][2] == pytest.approx([s["results"][n]["crps"] for n in names], rel=1e-12)
        # calibration: x the nominal levels, one curve per estimator, then the diagonal
        levels = s["results"][comp["name"]]["coverage"]["levels"]
        assert cal["labels"] == ["level"] + names + ["ideal (observed = nominal)"]
        assert cal["data"][0] == pytest.approx(levels) and cal["data"][-1] == pytest.approx(levels)
        for i, n in enumerate(names):
            assert cal["data"][1 + i] == pytest.approx(s["results"][n]["coverage"]["observed"], rel=1e-12), n
        # the composed model is calibrated here, the collapsed PF is not: the curves differ
        pf = cal["data"][1 + names.index("l96-sakov-pf")]
        mine = cal["data"][1 + names.index(comp["name"])]
        assert max(abs(a - b) for a, b in zip(mine, levels)) < 0.1 < max(abs(a - b) for a, b in zip(pf, levels))
    for kind in ("metrics", "calibration"):
        assert canvas_ink(browser, "[data-kind=%s] .uplot canvas" % kind) > 0.01, kind
    full_shot(browser, "10-estimator-evaluation")

    # the ranking form: what the daemon ranks, in its order, with the evidence
    browser.get(base + "/#/estimators")
    wait.until(EC.presence_of_element_located((By.ID, "choose-form")))
    browser.find_element(By.ID, "c-preset").send_keys("l96-sakov")
    browser.find_element(By.ID, "c-operator").send_keys('{"type": "subsample", "stride": 2}')
    browser.find_element(By.ID, "c-noise").send_keys("1.5")
    browser.find_element(By.ID, "c-window").send_keys("10")
    browser.find_element(By.ID, "choose-go").click()
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#ranking tr[data-name]")))
    import urllib.parse
    q = urllib.parse.urlencode({"preset": "l96-sakov", "operator": '{"type":"subsample","stride":2}',
                                "noise_std": "1.5", "window": "10"})
    m = d.get("/v1/estimators?" + q, headers=auth).json()
    rows = browser.find_elements(By.CSS_SELECTOR, "#ranking tr[data-name]")
    assert [r.get_attribute("data-name") for r in rows] == [i["name"] for i in m["items"]]
    ranked = [i for i in m["items"] if "rank" in i]
    assert len(ranked) >= 4 and ranked[0]["name"] == comp["name"]
    for r, i in zip(rows, m["items"]):
        tds = [td.text for td in r.find_elements(By.TAG_NAME, "td")]
        assert tds[0] == (str(i["rank"]) if "rank" in i else "–")
        if i["evidence"]:
            ev = i["evidence"]
            assert tds[3].startswith(ev["setup"]) and tds[4:7] == [fmt(ev["crps"]), fmt(ev["rmse"]),
                                                                   fmt(ev["coverage_max_abs_error"])], (tds, ev)
            assert tds[8] == (fmt(ev["seconds_per_request"]) + " s" if ev["seconds_per_request"] else "not measured")
    assert {"name": "l96-sakov-w10-npe", "reason": "trained for another operator"} in m["cannot_answer"]
    refused = browser.find_element(By.ID, "cannot-answer").text
    assert all(c["name"] + ": " + c["reason"] in refused for c in m["cannot_answer"])
    # an operator that is not JSON is said, without a request
    browser.find_element(By.ID, "c-operator").send_keys("{nope")
    browser.find_element(By.ID, "choose-go").click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "choose-result"), "not JSON"))
    browser.find_element(By.ID, "c-operator").clear()
    browser.find_element(By.ID, "c-operator").send_keys('{"type": "subsample", "stride": 2}')
    browser.find_element(By.ID, "choose-go").click()
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#ranking tr[data-name]")))
    browser.find_element(By.ID, "choose").screenshot(str(SHOTS / "11-choose.png"))

    # reload: tiny replaced, the local score removed, tiny-npe added, a broken file failed
    tmp = d.models / ".tiny.tmp"
    shutil.copyfile(golden / "tiny-npe.safetensors", tmp)
    os.replace(tmp, d.models / "tiny.safetensors")
    (d.models / "l96-sakov-n32-k3-local-score.safetensors").unlink()
    shutil.copyfile(golden / "tiny-npe.safetensors", d.models / "tiny-npe.safetensors")
    (d.models / "broken.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    browser.find_element(By.ID, "reload").click()
    report = wait.until(EC.presence_of_element_located((By.ID, "reload-report")))
    parts = {li.get_attribute("data-part"): li.text for li in report.find_elements(By.CSS_SELECTOR, "li[data-part]")}
    assert parts["added"].startswith("added: 1") and "tiny-npe (npe" in parts["added"], parts
    assert parts["replaced"].startswith("replaced: 1") and "tiny (tiny.safetensors)" in parts["replaced"], parts
    assert parts["removed"].startswith("removed: 1") and "l96-sakov-n32-k3-local-score" in parts["removed"], parts
    assert parts["failed"].startswith("failed: 1") and "broken.safetensors" in parts["failed"], parts
    assert parts["unchanged"].startswith("unchanged: 2") and comp["name"] in parts["unchanged"], parts
    # the list below is the registry after the reload
    names = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#estimators td:first-child a")]
    assert names == [e["name"] for e in d.get("/v1/estimators", headers=auth).json()["items"]]
    assert "tiny-npe" in names and local["name"] not in names
    # the ranking on the page is asked again: the removed model is gone from it
    assert local["name"] in [i["name"] for i in m["items"]]
    ranking = "return [...document.querySelectorAll('#ranking tr[data-name]')].map((r) => r.dataset.name)"
    wait.until(lambda b: b.execute_script(ranking) and local["name"] not in b.execute_script(ranking))
    m2 = d.get("/v1/estimators?" + q, headers=auth).json()
    assert browser.execute_script(ranking) == [i["name"] for i in m2["items"]]
    report.screenshot(str(SHOTS / "12-reload.png"))
    full_shot(browser, "12-reload-page")
    errors = console_errors(browser)
    assert not errors, errors
