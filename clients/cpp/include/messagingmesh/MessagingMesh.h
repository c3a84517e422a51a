// Messaging Mesh C++ client: everything in one include.
//
//     #include <messagingmesh/MessagingMesh.h>
//
// Builds on the C API (messaging_mesh.h), which shares its engine with the Rust library.
#pragma once

#include "BLOB.h"
#include "Connection.h"
#include "ConnectionParams.h"
#include "Exceptions.h"
#include "Field.h"
#include "Frame.h"
#include "Logger.h"
#include "Message.h"
#include "Subscription.h"
#include "Types.h"
