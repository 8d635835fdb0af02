// Batched subnet evaluation core. Framework-free.
#pragma once
