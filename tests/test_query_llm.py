"""The LLM query generator against a local fake OpenAI-compatible server: the request it sends, the
queries it keeps, and the offline fallback for roles a reply leaves out or for a broken reply."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from inference.retrieval.corpus import Patent
from solution.embedder.queries import ROLES, make_generator

PATENTS = [Patent("p1", "Drug coated balloon catheter", "A balloon catheter carries a drug coating. It dilates vessels.", ()),
           Patent("p2", "Knee implant", "A tibial tray holds a polyethylene insert. The insert rotates.", ())]


@pytest.fixture()
def fake_llm():
    """(base url, list of received request bodies, list of replies to send in turn)."""
    received: list[dict] = []
    replies: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
            content = replies.pop(0)
            if content == "HTTP 500":
                self.send_response(500)
                self.end_headers()
                return
            data = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):  # keep pytest output clean
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", received, replies
    server.shutdown()


def test_llm_queries_with_offline_fallback(fake_llm, monkeypatch):
    url, received, replies = fake_llm
    monkeypatch.setenv("QUERYGEN_BASE_URL", url)
    monkeypatch.setenv("QUERYGEN_API_KEY", "sk-test")
    replies += ['Here you go:\n```json\n{"concept": "device that widens blocked arteries", "keyword": "drug balloon"}\n```',
                "HTTP 500"]  # the second patent's request fails: offline queries, no lost run
    gen = make_generator("openai:tiny-llm", PATENTS, seed=0)
    queries = gen.generate(PATENTS)

    assert [r["path"] for r in received] == ["/v1/chat/completions"] * 2
    assert received[0]["model"] == "tiny-llm" and received[0]["auth"] == "Bearer sk-test"
    assert "Drug coated balloon catheter" in received[0]["messages"][0]["content"]
    by_key = {(q.patent_id, q.role): q for q in queries}
    assert len(queries) == 2 * len(ROLES)  # every role of every patent, whatever the server did
    assert by_key["p1", "concept"].text == "device that widens blocked arteries"
    assert by_key["p1", "concept"].generator == "openai:tiny-llm"
    assert by_key["p1", "question"].generator == "offline-rules"  # the reply left it out
    assert all(by_key["p2", role].generator == "offline-rules" for role in ROLES)
