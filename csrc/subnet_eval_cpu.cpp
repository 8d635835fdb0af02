#include "subnet_eval.h"
