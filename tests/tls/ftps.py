"""FTPS checks driven by tests/tls.rs with Python's ssl and ftplib: `ftps.py CHECK PORT`.

Prints what it observed; the Rust test asserts on it. The certificate is self-signed and made
by the test, so verification is off.
"""
import ftplib
import io
import socket
import ssl
import sys


def context(max_version=None):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if max_version:
        ctx.maximum_version = max_version
    return ctx


class ReusingFTP_TLS(ftplib.FTP_TLS):
    """The usual fix for ftplib: data connections resume the control connection's session,
    as FileZilla, lftp and curl do."""

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
        return conn, size


def login(cls, port, ctx=None):
    ftp = cls(context=ctx or context())
    ftp.connect("127.0.0.1", port)
    ftp.login("alice", "pw")
    ftp.prot_p()
    return ftp


def transfers(cls, port, ctx=None):
    ftp = login(cls, port, ctx)
    data = bytes(range(256)) * 4096  # 1 MiB
    for i in range(3):
        ftp.storbinary(f"STOR up{i}.bin", io.BytesIO(data))
        out = io.BytesIO()
        ftp.retrbinary(f"RETR up{i}.bin", out.write)
        print("roundtrip", i, out.getvalue() == data)
    print("names", sorted(ftp.nlst()))
    ftp.quit()


def stock(port):
    """Stock ftplib starts a new TLS session on each data connection: the upload is refused."""
    ftp = login(ftplib.FTP_TLS, port)
    try:
        ftp.storbinary("STOR up0.bin", io.BytesIO(b"x" * 100000))
        print("stored")
    except ftplib.Error as e:
        print("refused", str(e)[:3])
    except OSError:
        # The server closed the data connection under the client: the reply says why.
        try:
            print("refused", ftp.getresp()[:3])
        except ftplib.Error as e:
            print("refused", str(e)[:3])


def hijack(port):
    """Session B's passive port, opened with session A's TLS session: B's transfer must fail."""
    a, b = login(ReusingFTP_TLS, port), login(ReusingFTP_TLS, port)
    host, data_port = ftplib.parse229(b.sendcmd("EPSV"), b.sock.getpeername())
    raw = socket.create_connection(("127.0.0.1", data_port))
    print("preliminary", b.sendcmd("RETR secret.txt")[:3])
    try:
        stolen = a.context.wrap_socket(raw, server_hostname="127.0.0.1", session=a.sock.session)
        print("stolen bytes", len(stolen.recv(1024)))
    except (OSError, ssl.SSLError) as e:
        print("data refused", type(e).__name__)
    try:
        print("final", b.getresp()[:3])
    except ftplib.Error as e:
        print("final", str(e)[:3])
    a.quit()
    b.quit()


def inject(port):
    """Plaintext pipelined behind AUTH TLS must be dropped, not run inside the TLS session."""
    raw = socket.create_connection(("127.0.0.1", port))
    f = raw.makefile("rb")
    f.readline()  # 220
    raw.sendall(b"AUTH TLS\r\nUSER alice\r\n")
    print("auth", f.readline().decode().strip()[:3])
    tls = context().wrap_socket(raw, server_hostname="127.0.0.1")
    tls.sendall(b"PASS pw\r\n")
    # Had USER run, PASS would log in (230); dropped, PASS comes out of sequence (503).
    print("pass", tls.makefile("rb").readline().decode().strip()[:3])


def prot_after_pasv(port):
    """PROT P sent after EPSV: the data connection is TLS all the same, whether the client
    connects before the transfer command or after it."""
    ftp = ReusingFTP_TLS(context=context())
    ftp.connect("127.0.0.1", port)
    ftp.login("alice", "pw")
    for connect_first in (True, False):
        _, data_port = ftplib.parse229(ftp.sendcmd("EPSV"), ftp.sock.getpeername())
        ftp.prot_p()
        if connect_first:
            raw = socket.create_connection(("127.0.0.1", data_port))
        print("preliminary", ftp.sendcmd("RETR file.txt")[:3])
        if not connect_first:
            raw = socket.create_connection(("127.0.0.1", data_port))
        tls = ftp.context.wrap_socket(raw, server_hostname="127.0.0.1", session=ftp.sock.session)
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
        tls.close()
        print("connect first" if connect_first else "connect after", data == b"protected after all\n")
        print("final", ftp.voidresp()[:3])
        ftp.prot_c()  # the next EPSV is opened under PROT C again
    ftp.quit()


def proxied_implicit(port):
    """Behind a balancer on the implicit port: the PROXY header first, then TLS."""
    raw = socket.create_connection(("127.0.0.1", port))
    raw.sendall(b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 990\r\n")
    tls = context().wrap_socket(raw, server_hostname="127.0.0.1")
    f = tls.makefile("rb")
    print("greeting", f.readline().decode().strip()[:3])
    tls.sendall(b"USER alice\r\nPASS pw\r\nSTAT\r\n")
    replies = b"".join(f.readline() for _ in range(8)).decode()
    print("client", "192.0.2.7" in replies)


def main():
    check, port = sys.argv[1], int(sys.argv[2])
    if check == "reuse":
        transfers(ReusingFTP_TLS, port)
    elif check == "reuse-tls12":
        transfers(ReusingFTP_TLS, port, context(ssl.TLSVersion.TLSv1_2))
    elif check == "stock":
        stock(port)
    elif check == "stock-allowed":
        transfers(ftplib.FTP_TLS, port)
    elif check == "hijack":
        hijack(port)
    elif check == "prot-after-pasv":
        prot_after_pasv(port)
    elif check == "proxied-implicit":
        proxied_implicit(port)
    elif check == "inject":
        inject(port)


main()
