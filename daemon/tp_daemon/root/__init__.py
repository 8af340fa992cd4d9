"""The root daemon: one long-lived root process per workstation (and network namespace)
that owns the network side of every user's connection -- one TUN link, the routes, and
per-user nft tables -- so that a non-root user's daemon gets full routing and DNS.

    user daemon (non-root, one per user)          root daemon (this package)
      session, intercepts, traffic, handlers        TUN link, routes (union of all users)
      transparent proxy on 127.0.0.1:P   <-------   nft: uid U's TCP to cluster ranges
      cluster-only resolver on 127.0.0.1:D <-----   DNS relay: uid U's queries; cluster
                                                    names asked at D, the rest upstream

Every nft rule matches the caller's uid (`meta skuid`), so two users connected to
different clusters never see each other's redirects, and a caller can only steer its
own traffic. A lease lives as long as the caller's connection to the root socket: when
the user daemon dies, its table goes and the routes shrink to the remaining users.
"""
