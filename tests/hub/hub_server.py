#!/usr/bin/env python3
"""A local stand-in for the Hugging Face Hub, for tests (standard library only).

Serves one folder as repository OWNER/NAME under the hub's URL shapes:
  GET /api/models/OWNER/NAME/revision/REV[?blobs=true]  -> {"sha": ..., "siblings": [{rfilename, size, lfs?}]}
  GET /OWNER/NAME/resolve/REV/FILE                      -> the file, with HTTP Range support
Options: --token T (401 without "Authorization: Bearer T"), --cut-after N (the first
download of each .safetensors file stops after N bytes, as a dropped connection
would), --lie-size (the API reports sizes one byte too large). Prints the port,
then serves until killed. GET /stats returns {"range_requests": n, "downloads": n}.
"""
import argparse
import hashlib
import http.server
import json
import os
import socketserver
import sys

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--folder", required=True)
    parser.add_argument("--repo", required=True)
    parser.add_argument("--token", default="")
    parser.add_argument("--cut-after", type=int, default=0)
    parser.add_argument("--lie-size", action="store_true")
    args = parser.parse_args()
    stats = {"range_requests": 0, "downloads": 0, "cut": set()}

    def siblings():
        out = []
        for name in sorted(os.listdir(args.folder)):
            path = os.path.join(args.folder, name)
            size = os.path.getsize(path) + (1 if args.lie_size else 0)
            entry = {"rfilename": name, "size": size}
            if name.endswith(".safetensors"):
                with open(path, "rb") as handle:
                    entry["lfs"] = {"sha256": hashlib.sha256(handle.read()).hexdigest(), "size": size}
            out.append(entry)
        out.append({"rfilename": "pytorch_model.bin", "size": 3})  # never fetched
        return out

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def send_json(self, code, obj):
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            path = self.path.split("?")[0]
            if path == "/stats":
                return self.send_json(200, {"range_requests": stats["range_requests"], "downloads": stats["downloads"]})
            if args.token and self.headers.get("Authorization") != "Bearer " + args.token:
                return self.send_json(401, {"error": "unauthorized"})
            api_prefix = f"/api/models/{args.repo}/revision/"
            if path.startswith(api_prefix):
                return self.send_json(200, {"id": args.repo, "sha": COMMIT, "siblings": siblings()})
            file_prefix = f"/{args.repo}/resolve/"
            if not path.startswith(file_prefix):
                return self.send_json(404, {"error": "not found"})
            name = path[len(file_prefix):].split("/", 1)[1]
            full = os.path.join(args.folder, name)
            if not os.path.isfile(full):
                return self.send_json(404, {"error": "no such file"})
            with open(full, "rb") as handle:
                data = handle.read()
            start = 0
            if self.headers.get("Range", "").startswith("bytes="):
                stats["range_requests"] += 1
                start = int(self.headers["Range"][6:].split("-")[0])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            stats["downloads"] += 1
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if args.cut_after and name.endswith(".safetensors") and name not in stats["cut"] and start == 0:
                stats["cut"].add(name)
                self.wfile.write(body[: args.cut_after])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self.wfile.write(body)

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
