using System.Reflection;
using System.Runtime.CompilerServices;

[assembly: AssemblyTitle("MessagingMesh")]
[assembly: AssemblyDescription("Messaging Mesh client library for .NET")]
[assembly: AssemblyVersion("0.1.0.0")]

// The unit tests check the frame codec against the shared byte vectors without making the codec
// part of the public API.
[assembly: InternalsVisibleTo("MessagingMesh.Tests")]
