package io.seedsvc.cassandra;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.Collections;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;

/**
 * Reads one HTTP/1.x response from a stream: status line, headers, and a body that must be framed
 * (RFC 9112 section 6) so that a cut connection can be told from the end of the list.
 *
 * <p>A body cut short of its {@code Content-Length}, or a chunked body that ends before its last
 * chunk, is an {@link IOException}, never a shorter list: {@code 10.0.0.12,10.0.0.1} is what a
 * cut {@code 10.0.0.12,10.0.0.10} looks like. A body with neither {@code Content-Length} nor
 * chunked coding (ended by closing the connection) is refused for the same reason. Ambiguous
 * framing (both headers, conflicting lengths, other transfer codings) is refused as well.
 *
 * <p>Every size is capped. No I/O other than reading the given stream; timeouts are the stream's.
 */
final class HttpResponseReader
{
    /** Status line or one header line; the sidecar's are well under 200 bytes. */
    static final int MAX_LINE_BYTES = 8 * 1024;
    /** All header lines of one response together. */
    static final int MAX_HEADER_BYTES = 16 * 1024;
    /** Interim (1xx) responses skipped before the real one. */
    private static final int MAX_INTERIM_RESPONSES = 4;

    /** Status line and headers of a response; header names lower-cased, the first value kept. */
    static final class Head
    {
        final int status;
        final Map<String, String> headers;
        final String contentLength;     // null when absent
        final String transferEncoding;  // null when absent

        Head(int status, Map<String, String> headers, String contentLength, String transferEncoding)
        {
            this.status = status;
            this.headers = Collections.unmodifiableMap(headers);
            this.contentLength = contentLength;
            this.transferEncoding = transferEncoding;
        }

        String header(String name)
        {
            return headers.get(name.toLowerCase(Locale.ROOT));
        }
    }

    private HttpResponseReader()
    {
    }

    /** Reads the status line and headers, skipping interim 1xx responses. */
    static Head readHead(InputStream in) throws IOException
    {
        for (int interim = 0; ; interim++)
        {
            Head head = readOneHead(in);
            if (head.status >= 200)
                return head;
            if (head.status == 101 || interim >= MAX_INTERIM_RESPONSES)
                throw new IOException("unexpected HTTP " + head.status + " response");
        }
    }

    /**
     * Reads the body that {@code head} announces, completely.
     *
     * @throws IOException if the body is cut short, unframed, ambiguously framed or larger than
     *                     {@code maxBytes}
     */
    static byte[] readBody(InputStream in, Head head, int maxBytes) throws IOException
    {
        if (head.status == 204 || head.status == 304)
            return new byte[0];
        if (head.transferEncoding != null)
        {
            if (head.contentLength != null)
                throw new IOException("response has both Transfer-Encoding and Content-Length");
            if (!head.transferEncoding.trim().equalsIgnoreCase("chunked"))
                throw new IOException("unsupported Transfer-Encoding '" + head.transferEncoding + "'");
            return readChunked(in, maxBytes);
        }
        if (head.contentLength == null)
            throw new IOException("response body has neither Content-Length nor chunked coding; a cut connection"
                                  + " could not be told from the end of the list");
        long length = parseContentLength(head.contentLength);
        if (length > maxBytes)
            throw new IOException("response body larger than " + maxBytes + " bytes (Content-Length " + length + ")");
        byte[] body = new byte[(int) length];
        int got = readFully(in, body, 0, body.length);
        if (got < body.length)
            throw new IOException("response body cut short: " + got + " of " + length + " bytes (Content-Length)");
        return body;
    }

    private static Head readOneHead(InputStream in) throws IOException
    {
        String statusLine = readLine(in, "status line");
        if (statusLine == null)
            throw new IOException("connection closed before any response");
        int status = parseStatus(statusLine);
        Map<String, String> headers = new HashMap<>();
        String contentLength = null;
        String transferEncoding = null;
        int headerBytes = 0;
        while (true)
        {
            String line = readLine(in, "header");
            if (line == null)
                throw new IOException("connection closed in the response headers");
            if (line.isEmpty())
                return new Head(status, headers, contentLength, transferEncoding);
            headerBytes += line.length() + 2;
            if (headerBytes > MAX_HEADER_BYTES)
                throw new IOException("response headers larger than " + MAX_HEADER_BYTES + " bytes");
            int colon = line.indexOf(':');
            if (colon <= 0 || line.charAt(0) == ' ' || line.charAt(0) == '\t')
                throw new IOException("malformed response header line");
            String name = line.substring(0, colon).trim().toLowerCase(Locale.ROOT);
            String value = line.substring(colon + 1).trim();
            if (name.equals("content-length"))
            {
                // Repeated lengths must agree (RFC 9110 section 8.6); anything else is ambiguous.
                if (contentLength != null && !contentLength.equals(value))
                    throw new IOException("conflicting Content-Length headers");
                contentLength = value;
            }
            else if (name.equals("transfer-encoding"))
                transferEncoding = transferEncoding == null ? value : transferEncoding + "," + value;
            else if (!headers.containsKey(name))
                headers.put(name, value);
        }
    }

    private static int parseStatus(String line) throws IOException
    {
        // "HTTP/1.1 200 OK": version, a space, three digits, then a space or the end.
        if (!line.startsWith("HTTP/1.") || line.length() < 12 || line.charAt(8) != ' '
            || (line.length() > 12 && line.charAt(12) != ' '))
            throw new IOException("malformed status line");
        int status = 0;
        for (int i = 9; i < 12; i++)
        {
            char c = line.charAt(i);
            if (c < '0' || c > '9')
                throw new IOException("malformed status line");
            status = status * 10 + (c - '0');
        }
        if (status < 100)
            throw new IOException("malformed status line");
        return status;
    }

    private static long parseContentLength(String text) throws IOException
    {
        if (text.isEmpty() || text.length() > 18)
            throw new IOException("invalid Content-Length '" + text + "'");
        long value = 0;
        for (int i = 0; i < text.length(); i++)
        {
            char c = text.charAt(i);
            if (c < '0' || c > '9')
                throw new IOException("invalid Content-Length '" + text + "'");
            value = value * 10 + (c - '0');
        }
        return value;
    }

    private static byte[] readChunked(InputStream in, int maxBytes) throws IOException
    {
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        while (true)
        {
            String sizeLine = readLine(in, "chunk size");
            if (sizeLine == null)
                throw new IOException("response body cut short: chunked stream ended before its last chunk");
            int size = parseChunkSize(sizeLine);
            if (size == 0)
                break;
            if (body.size() + (long) size > maxBytes)
                throw new IOException("response body larger than " + maxBytes + " bytes");
            byte[] chunk = new byte[size];
            if (readFully(in, chunk, 0, size) < size)
                throw new IOException("response body cut short: chunked stream ended inside a chunk");
            body.write(chunk, 0, size);
            String end = readLine(in, "chunk end");
            if (end == null)
                throw new IOException("response body cut short: chunked stream ended before its last chunk");
            if (!end.isEmpty())
                throw new IOException("malformed chunked body: data longer than its chunk size");
        }
        // Trailer section, ended by an empty line; its fields are not used.
        int trailerBytes = 0;
        while (true)
        {
            String trailer = readLine(in, "trailer");
            if (trailer == null)
                throw new IOException("response body cut short: chunked stream ended in its trailer");
            if (trailer.isEmpty())
                return body.toByteArray();
            trailerBytes += trailer.length() + 2;
            if (trailerBytes > MAX_HEADER_BYTES)
                throw new IOException("chunked trailer larger than " + MAX_HEADER_BYTES + " bytes");
        }
    }

    private static int parseChunkSize(String line) throws IOException
    {
        int semicolon = line.indexOf(';'); // chunk extensions are allowed and ignored
        String hex = (semicolon >= 0 ? line.substring(0, semicolon) : line).trim();
        if (hex.isEmpty() || hex.length() > 7)  // 7 hex digits are far beyond any body accepted
            throw new IOException("malformed chunk size");
        int size = 0;
        for (int i = 0; i < hex.length(); i++)
        {
            int digit = Character.digit(hex.charAt(i), 16);
            if (digit < 0 || hex.charAt(i) > 'f')
                throw new IOException("malformed chunk size");
            size = (size << 4) | digit;
        }
        return size;
    }

    /**
     * @return one line without its CRLF (a bare LF is tolerated), in ISO-8859-1 as HTTP's header
     *         octets are; {@code null} at end of stream before any byte
     */
    private static String readLine(InputStream in, String what) throws IOException
    {
        ByteArrayOutputStream line = new ByteArrayOutputStream();
        while (true)
        {
            int b = in.read();
            if (b < 0)
            {
                if (line.size() == 0)
                    return null;
                throw new IOException("response cut short: connection closed inside a " + what + " line");
            }
            if (b == '\n')
                break;
            if (line.size() >= MAX_LINE_BYTES)
                throw new IOException(what + " line longer than " + MAX_LINE_BYTES + " bytes");
            line.write(b);
        }
        byte[] bytes = line.toByteArray();
        int length = bytes.length > 0 && bytes[bytes.length - 1] == '\r' ? bytes.length - 1 : bytes.length;
        return new String(bytes, 0, length, StandardCharsets.ISO_8859_1);
    }

    /** @return how many bytes were read: fewer than {@code length} only at end of stream */
    private static int readFully(InputStream in, byte[] buffer, int offset, int length) throws IOException
    {
        int total = 0;
        while (total < length)
        {
            int n = in.read(buffer, offset + total, length - total);
            if (n < 0)
                break;
            total += n;
        }
        return total;
    }
}
