"""A kerlm sentiment export served by apps/serve.py answers like the in-process model."""

import numpy as np
import pytest
import requests

from conftest import start_server, wait_until_serving

TEXTS = ["What a fantastic little phone.", "The food was cold and the waiter rude."]


@pytest.fixture(scope="module")
def served(trained_run, tmp_path_factory):
    process, base, log = start_server(
        tmp_path_factory.mktemp("e2e"), "--model_name=sentiment",
        f"--model_base_path={trained_run['export_dir']}/sentiment")
    try:
        wait_until_serving(process, f"{base}/v1/models/sentiment", log)
        yield f"{base}/v1/models/sentiment"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_rest_predictions_match_in_process_model(trained_run, served):
    from kerlm import tasks, training
    task = tasks.restore_task(trained_run["model_dir"])
    expected = task.predict(training.load_model(trained_run["model_dir"]), TEXTS)
    expected_probabilities = [[a["probabilities"][label] for label in task.labels.labels]
                              for a in expected]

    rows = requests.post(f"{served}:predict", json={"instances": TEXTS}, timeout=30)
    assert rows.status_code == 200, rows.text
    predictions = rows.json()["predictions"]
    assert [p["label"] for p in predictions] == [a["label"] for a in expected]
    np.testing.assert_allclose([p["probabilities"] for p in predictions],
                               expected_probabilities, atol=1e-5)

    columns = requests.post(f"{served}:predict", timeout=30, json={
        "signature_name": "serving_default", "inputs": {"text": TEXTS}}).json()["outputs"]
    assert columns["label"] == [a["label"] for a in expected]
    np.testing.assert_allclose(columns["probabilities"], expected_probabilities, atol=1e-5)


def test_metadata_describes_the_text_signature(served):
    signature = requests.get(f"{served}/metadata", timeout=30).json()[
        "metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["inputs"]["text"]["dtype"] == "DT_STRING"
    assert {name: out["dtype"] for name, out in signature["outputs"].items()} == {
        "label": "DT_STRING", "label_id": "DT_INT32", "probabilities": "DT_FLOAT"}


def test_wrong_input_name_is_a_json_400(served):
    response = requests.post(f"{served}:predict", json={"instances": [{"review": "x"}]},
                             timeout=30)
    assert response.status_code == 400
    assert "text" in response.json()["error"]
