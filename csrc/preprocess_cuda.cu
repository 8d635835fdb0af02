#include "preprocess.h"
