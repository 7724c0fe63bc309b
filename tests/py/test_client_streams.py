"""The Python client's cycling API against a real sbidad: Client.stream, Stream.cycle
(idempotent, waits for the analysis), Stream.history, Stream.delete, Client.forecast."""
import numpy as np
import pytest

from daemon_util import fresh_daemon  # noqa: F401
from sbida_client import Client, ProblemError, Stream


def test_stream_and_forecast(fresh_daemon):
    d = fresh_daemon().start()
    c = Client("http://127.0.0.1:%d" % d.port, retry_for=5)
    s = c.stream("l96-sakov-etkf", operator={"type": "identity"}, noise_std=1.0, n_samples=20, seed=3,
                 params={"inflation": 1.02})
    assert isinstance(s, Stream) and s.config["window"] == 1 and s.config["params"] == {"inflation": 1.02}
    rng = np.random.default_rng(0)
    rows = rng.normal(0, 3, size=(4, 40))
    rows[2, :5] = np.nan                      # missing values
    jobs = [s.cycle(t, rows[t]) for t in range(3)]
    assert all(j.state == "succeeded" and j.mean.shape == (40,) for j in jobs)
    again = s.cycle(2, rows[2])               # a repeat: the same job
    assert again.id == jobs[2].id
    with pytest.raises(ProblemError) as e:
        s.cycle(2, rows[3])
    assert e.value.status == 409
    h = s.history()
    assert [x["time_index"] for x in h] == [0, 1, 2] and [x["job"] for x in h] == [j.id for j in jobs]
    assert np.allclose(h[1]["mean"], jobs[1].mean)
    assert c.get_stream(s.id).raw["last_cycle"]["job"] == jobs[2].id
    assert s.id in [x.id for x in c.streams()]
    f = c.forecast(jobs[2], steps=4)
    assert f.state == "succeeded" and f["time_index"] == 6 and f.mean.shape == (40,)
    assert c.samples(f.id).shape == (20, 40)
    with pytest.raises(ProblemError) as e:
        c.stream("l96-sakov-pf", operator={"type": "identity"}, noise_std=1.0)
    assert e.value.status == 422 and "l96-sakov-etkf" in e.value.detail
    s.delete()
    with pytest.raises(ProblemError) as e:
        c.get_stream(s.id)
    assert e.value.status == 404
