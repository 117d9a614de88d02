"""``python -m hvkit.testing.vbox_sim``: the stand-in VBoxManage."""

from . import main

raise SystemExit(main())
