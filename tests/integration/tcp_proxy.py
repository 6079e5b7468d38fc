"""Man-in-the-middle TCP proxies on loopback for fault and protocol tests: they forward to a
real server and can watch, rewrite, cut or stall what passes."""

import socket
import threading

from harness import free_port

GO, CUT, STALL = "go", "cut", "stall"


class Proxy:
    """Forwards every connection on a free loopback port to `target`. Subclasses override
    relay(), which sees each chunk and says what to send and whether to go on."""

    def __init__(self, target):
        self.port = free_port()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(16)
        self.target = target
        self.sessions = 0
        self.conns = []
        threading.Thread(target=self.serve, daemon=True).start()

    def relay(self, data, from_client, state):
        """Returns (bytes to send on, GO | CUT | STALL); `state` is per direction."""
        return data, GO

    def serve(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            self.sessions += 1
            self.conns += [client, server]
            threading.Thread(target=self.pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self.pump, args=(server, client, False), daemon=True).start()

    def pump(self, src, dst, from_client):
        state = {}
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                data, action = self.relay(data, from_client, state)
                dst.sendall(data)
                if action == STALL:
                    threading.Event().wait()  # hold the connection open, silent
                if action != GO:
                    break
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.listener.close()
        for s in self.conns:
            s.close()
