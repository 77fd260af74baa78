package io.seedsvc.cassandra;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;

final class Ports
{
    private Ports()
    {
    }

    /** A loopback port that was free a moment ago and has no listener: connections are refused. */
    static int closedLoopbackPort() throws IOException
    {
        try (ServerSocket socket = new ServerSocket(0, 1, InetAddress.getLoopbackAddress()))
        {
            return socket.getLocalPort();
        }
    }
}
