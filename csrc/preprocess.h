// Frame preprocessing core: max of two frames, then area resize. Framework-free.
#pragma once
