"""Stand-ins that tests (and the emulated cluster) share: a kubelet's device-plugin side, and a
scriptable Bitfusion client. Real protocols, fake counterparts; nothing here is used in production."""
