"""Publishing issues beyond email: RSS / Atom / JSON Feed (feeds), the static web archive (archive),
the issues they are made from (issues), WebSub pings (websub); ``outputs`` writes them all."""
