import json
from http.server import BaseHTTPRequestHandler, HTTPServer

with open("/var/run/argo/token") as f:
    token = f.read().strip()


class Plugin(BaseHTTPRequestHandler):
    def reply(self, code, body=None):
        self.send_response(code)
        self.end_headers()
        if body is not None:
            self.wfile.write(json.dumps(body).encode("utf-8"))

    def do_POST(self):
        if self.headers.get("Authorization") != "Bearer " + token:
            return self.reply(403)
        if self.path != "/api/v1/template.execute":
            return self.reply(404)
        length = int(self.headers.get("Content-Length", 0))
        args = json.loads(self.rfile.read(length))
        spec = args["template"].get("plugin", {}).get("greet")
        if spec is None:
            return self.reply(200, {})
        name = spec.get("name", "world")
        return self.reply(200, {"node": {"phase": "Succeeded", "message": f"Hello {name}!"}})


if __name__ == "__main__":
    HTTPServer(("", 4360), Plugin).serve_forever()
