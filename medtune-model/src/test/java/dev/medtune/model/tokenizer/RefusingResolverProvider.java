package dev.medtune.model.tokenizer;

import java.net.InetAddress;
import java.net.UnknownHostException;
import java.net.spi.InetAddressResolver;
import java.net.spi.InetAddressResolverProvider;
import java.util.stream.Stream;

/**
 * For {@link OfflineLoadProbe} only (active when {@code -Dmedtune.probe.refuseNetwork=true}): every
 * host name lookup, the first step of any connection, is recorded and refused. Otherwise the JVM's
 * own resolver is used unchanged.
 */
public final class RefusingResolverProvider extends InetAddressResolverProvider {
  @Override
  public InetAddressResolver get(Configuration configuration) {
    if (!Boolean.getBoolean("medtune.probe.refuseNetwork")) {
      return configuration.builtinResolver();
    }
    return new InetAddressResolver() {
      @Override
      public Stream<InetAddress> lookupByName(String host, LookupPolicy lookupPolicy)
          throws UnknownHostException {
        synchronized (OfflineLoadProbe.attempts) {
          OfflineLoadProbe.attempts.add("lookup " + host);
        }
        throw new UnknownHostException("network use refused by OfflineLoadProbe: " + host);
      }

      @Override
      public String lookupByAddress(byte[] addr) throws UnknownHostException {
        throw new UnknownHostException("network use refused by OfflineLoadProbe");
      }
    };
  }

  @Override
  public String name() {
    return "medtune-offline-probe";
  }
}
